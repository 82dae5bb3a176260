"""Test-only callbacks, added to real runs through the config (+callbacks.<name>._target_=...)."""
from __future__ import annotations

import lightning as L
import torch


class PoisonWeightsAtEpoch(L.Callback):
    """Sets every weight to NaN at the start of epoch `epoch`, so that the loss becomes NaN."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))
