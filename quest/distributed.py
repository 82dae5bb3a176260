"""Data-parallel training that ends its processes cleanly and reports like a single process.

- Lightning's DDP strategy destroys the process group at exit only for NCCL. A gloo process group
  (CPU DDP, ``trainer=ddp_cpu``) left to interpreter finalization can abort the process
  ("terminate called without an active exception"): its C++ worker threads still hold work objects
  whose tensors need the GIL while the interpreter is being torn down. One such abort fails the
  whole run. :class:`DDPStrategy` registers ``destroy_process_group`` at exit for every backend, in
  every process that joins the group.
- Under ddp_spawn, training runs in worker processes and Lightning sends back only the weights,
  the best checkpoint's path and the last metrics, so the main process's ``trainer.current_epoch``
  and ``trainer.global_step`` stay 0 and its checkpoint callback has no best score. The launcher
  here also sends back the fit loop's progress and the checkpoint callback's state.
"""
from __future__ import annotations

import atexit
import io
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy as LightningDDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.trainer.states import TrainerFn

FIT_STATE_KEY = "quest_fit_state_bytes"


def destroy_process_group_if_initialized() -> None:
    """Destroy the default process group of this process, if there is one (idempotent)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def fit_state(trainer: pl.Trainer) -> dict[str, Any]:
    """What a fit leaves in the trainer beyond the weights: loop progress and checkpoint state."""
    epoch_loop = trainer.fit_loop.epoch_loop
    state: dict[str, Any] = {
        "epoch_progress": trainer.fit_loop.epoch_progress.state_dict(),
        "optim_progress": epoch_loop.automatic_optimization.optim_progress.state_dict(),
        "manual_optim_step_progress": epoch_loop.manual_optimization.optim_step_progress.state_dict(),
        "batches_that_stepped": epoch_loop._batches_that_stepped,
    }
    if trainer.checkpoint_callback is not None:
        state["checkpoint_callback"] = trainer.checkpoint_callback.state_dict()
    return state


def load_fit_state(trainer: pl.Trainer, state: dict[str, Any]) -> None:
    """Restore `fit_state` into another process's trainer (current_epoch, global_step, best score)."""
    epoch_loop = trainer.fit_loop.epoch_loop
    trainer.fit_loop.epoch_progress.load_state_dict(state["epoch_progress"])
    epoch_loop.automatic_optimization.optim_progress.load_state_dict(state["optim_progress"])
    epoch_loop.manual_optimization.optim_step_progress.load_state_dict(state["manual_optim_step_progress"])
    epoch_loop._batches_that_stepped = state["batches_that_stepped"]
    if trainer.checkpoint_callback is not None and "checkpoint_callback" in state:
        trainer.checkpoint_callback.load_state_dict(state["checkpoint_callback"])


class _FitStateReturningLauncher(_MultiProcessingLauncher):
    """Lightning's spawn/fork launcher that also returns `fit_state` from rank 0 after a fit
    (as bytes, like Lightning's own callback metrics, so no tensor memory is shared)."""

    def get_extra_results(self, trainer: pl.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        if trainer.state.fn == TrainerFn.FITTING:
            buffer = io.BytesIO()
            torch.save(fit_state(trainer), buffer)
            extra[FIT_STATE_KEY] = buffer.getvalue()
        return extra

    def update_main_process_results(self, trainer: pl.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        if FIT_STATE_KEY in extra:
            load_fit_state(trainer, torch.load(io.BytesIO(extra[FIT_STATE_KEY]), weights_only=True))


class DDPStrategy(LightningDDPStrategy):
    """Lightning's DDP (``start_method`` popen, spawn or fork) that destroys its process group at
    exit and, when it spawns or forks workers, brings the fit's progress back to the main process."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _MultiProcessingLauncher):
            self._launcher = _FitStateReturningLauncher(self, start_method=self._start_method)

    def setup_distributed(self) -> None:
        super().setup_distributed()
        atexit.register(destroy_process_group_if_initialized)
