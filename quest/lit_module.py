"""The LightningModule: BPTT over T steps with the spiking network, REFERENCE.md section 6.

loss = mean over t of cross-entropy(logits_t, y); prediction = argmax of sum over t of logits_t.
Adam (lr 1e-3, weight decay 1e-4) with cosine annealing over all epochs, or the paper's x0.1
steps at 50% and 75% of the epochs.

start_spike_rate (opt-in, not in the paper; null = the paper's init): before the first optimizer
step, scale each quantized layer's weights and alpha so that it fires at this rate per neuron per
time step on the first training batch (quest/snn/start_calibration.py).
"""
from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from quest import rng_state
from quest.snn.scan import set_compile
from quest.snn.start_calibration import calibrate_start

SCHEDULERS = ("cosine", "step", "none")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops (checkpoints already written stay)."""


class QuestModule(L.LightningModule):
    """Wraps a spiking network whose forward returns logits [T, B, K]."""

    def __init__(
        self,
        net: nn.Module,
        num_classes: int = 10,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        step_milestones: tuple[float, ...] = (0.5, 0.75),
        step_gamma: float = 0.1,
        compile: bool = False,
        compile_scan: bool = False,
        start_spike_rate: float | None = None,
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ValueError(f"module.scheduler={scheduler!r}: allowed {list(SCHEDULERS)}")
        if not lr > 0:
            raise ValueError(f"module.lr={lr!r}: must be > 0")
        if not isinstance(compile_scan, bool):
            raise ValueError(f"module.compile_scan={compile_scan!r}: allowed true or false")
        if start_spike_rate is not None and not 0.0 < start_spike_rate < 1.0:
            raise ValueError(f"module.start_spike_rate={start_spike_rate!r}: must be in (0, 1), or null for the paper's init")
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.start_gains: dict[str, float] = {}
        self.net = net
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.val_acc_best = MaxMetric()
        self._restored_best: float | None = None  # the best val acc before a resume (on_load_checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        # every stage, so that a job of a multirun never inherits the switch of the job before it
        set_compile(bool(self.hparams.compile_scan))
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)

    def model_step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, predictions, targets) for one batch."""
        x, y = batch
        logits = self.net(x)
        t = logits.shape[0]
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(t))  # = mean_t CE(logits_t, y)
        return loss, logits.sum(0).argmax(-1), y

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # the sanity check's validation does not count
        if self._restored_best is not None:  # a resumed run: its best so far
            self.val_acc_best(torch.tensor(self._restored_best))

    def on_train_epoch_start(self) -> None:
        # the same on every process; sync_dist keeps Lightning from warning under DDP
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, sync_dist=True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        rate = self.hparams.start_spike_rate
        if rate is None or self.global_step != 0 or batch_idx != 0 or self.start_gains:
            return
        self.start_gains = calibrate_start(self.net, batch[0], rate)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for p in self.net.parameters():  # every process starts from rank 0's calibration
                torch.distributed.broadcast(p.data, src=0)
        if self.trainer.is_global_zero:  # once, at step 0 (self.log would repeat it every logging step)
            for lg in self.loggers:
                lg.log_metrics({f"start_gain/{n}": g for n, g in self.start_gains.items()}, step=self.global_step)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, preds, y = self.model_step(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "stopped (try a lower module.lr)"
            )
        self.train_loss(loss)
        self.train_acc(preds, y)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.val_loss(loss)
        self.val_acc(preds, y)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.test_loss(loss)
        self.test_acc(preds, y)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["quest_rng_state"] = rng_state.capture()
        # torchmetrics states are not in the state_dict: without this a resumed run's best val acc
        # would be that of its epochs after the resume only
        if self.val_acc_best.update_count:
            checkpoint["val_acc_best"] = float(self.val_acc_best.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming training: continue with the generators' state at the checkpoint (quest.rng_state)
        and the best val acc so far."""
        self._restored_best = checkpoint.get("val_acc_best")
        if "quest_rng_state" in checkpoint and self._trainer is not None and self.trainer.state.fn == "fit":
            rng_state.restore(checkpoint["quest_rng_state"])

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = list(self.parameters())
        # fused Adam (one kernel over all parameters) where torch has it for every parameter: the same
        # update up to float rounding, several times faster than foreach (benchmarks/bench_train_step.py)
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params)
        optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay, fused=fused or None)
        epochs = max(1, self.trainer.max_epochs or 1)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        else:
            milestones = sorted({max(1, math.floor(f * epochs)) for f in hp.step_milestones})
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=hp.step_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
