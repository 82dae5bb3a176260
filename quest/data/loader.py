"""A loader over tensors that yields whole batches by one index gather (no per-image collate).

Shuffles with a per-epoch seed (seed + epoch; Lightning sets the epoch through `sampler.set_epoch`
at the start of every epoch, so a run resumed from a checkpoint draws the order an uninterrupted run
would), keeps or drops the last partial batch, and under distributed
training gives each process its own shard of every epoch's permutation (so the trainer's
`use_distributed_sampler` must be off; the QUEST trainer configs set it).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist


class EpochCounter:
    """The epoch whose permutation the next pass draws; `set_epoch` is Lightning's sampler hook."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size}: must be >= 1")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.sampler = EpochCounter()
        self.batch_sampler = None  # what Lightning looks for beside `sampler` (batches are cut here)

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
            g = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
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
        self.sampler.epoch += 1  # a new order on the next pass also without Lightning
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]
