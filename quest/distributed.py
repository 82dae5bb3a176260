"""Data-parallel training that ends its processes cleanly.

Lightning's DDP strategy destroys the process group at exit only for NCCL. A gloo process group
(CPU DDP, ``trainer=ddp_cpu``) left to interpreter finalization can abort the process
("terminate called without an active exception"): its C++ worker threads still hold work objects
whose tensors need the GIL while the interpreter is being torn down. One such abort fails the whole
run. :class:`DDPStrategy` registers ``destroy_process_group`` at exit for every backend, in every
process that joins the group, so the group is gone while the interpreter is still whole.
"""
from __future__ import annotations

import atexit

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy as LightningDDPStrategy


def destroy_process_group_if_initialized() -> None:
    """Destroy the default process group of this process, if there is one (idempotent)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DDPStrategy(LightningDDPStrategy):
    """Lightning's DDP (``start_method`` popen, spawn or fork) that destroys its process group at exit."""

    def setup_distributed(self) -> None:
        super().setup_distributed()
        atexit.register(destroy_process_group_if_initialized)
