"""A loader over tensors that yields whole batches by one index gather (no per-image collate).

Shuffles with a per-epoch seed, keeps or drops the last partial batch, and under distributed
training gives each process its own shard of every epoch's permutation (so the trainer's
`use_distributed_sampler` must be off; the QUEST trainer configs set it). It is stateful: a
checkpoint records the epoch and the batches served, so a resumed run continues the same epoch's
permutation where it stopped (mid-epoch) and the next epoch's permutation after an epoch end.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.distributed as dist


class TensorBatchLoader:
    """Iterate (x[idx], y[idx]) batches of tensors that may already live on the accelerator."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        batches_per_epoch: Callable[[], float] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size}: must be >= 1")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0  # epochs started: the next epoch's permutation is seeded with seed + epoch
        self.batches_per_epoch = batches_per_epoch  # what the trainer runs (limit_train_batches), if known
        self._served: int | None = None  # batches served in the epoch in progress (None: between epochs)
        self._resume_at = 0

    def _shard(self) -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _per_rank(self, world: int) -> int:
        """Images each process sees per epoch (the last shard padded by wrapping when kept)."""
        n = len(self.x)
        return n // world if (self.drop_last or self.shuffle) else -(-n // world)

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        rank, world = self._shard()
        per_rank = self._per_rank(world)
        if world > 1:
            if per_rank * world > n:  # pad by wrapping, as DistributedSampler does
                order = torch.cat([order, order[: per_rank * world - n]])
            order = order[rank * per_rank : (rank + 1) * per_rank]
        return order

    def __len__(self) -> int:
        n = self._per_rank(self._shard()[1])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._indices().to(self.x.device)
        self.epoch += 1
        start, self._resume_at = self._resume_at, 0
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            self._served = i + 1
            yield self.x[idx], self.y[idx]
        self._served = None

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "batch"}: the permutation and the first batch a resumed run continues with."""
        per_epoch = min(len(self), self.batches_per_epoch()) if self.batches_per_epoch else len(self)
        if self._served is not None and self._served < per_epoch:
            return {"epoch": self.epoch - 1, "batch": self._served}
        return {"epoch": self.epoch, "batch": 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._resume_at = int(state["epoch"]), int(state["batch"])
