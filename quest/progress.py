"""What the console shows while training: the model summary and progress, on a terminal and off one (nohup, Docker logs, SLURM, CI).

On a terminal: Lightning's rich progress bar. Otherwise a rich bar prints only its last frame, so
QUEST logs plain lines instead, every `every_s` seconds and at each epoch's end, to the console and
the run's train.log:

    epoch 2/6 step 31/45 loss 2.0412 | 412.5 images/s | ETA 0:01:52
    epoch 2/6 val/acc 0.2440 val/loss 2.0113

ETA = remaining training batches of the run / training batches per second so far (validation
time is not in it).
"""
from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

log = logging.getLogger("quest")


def progress_bar(every_s: float = 30.0) -> ProgressBar:
    """A rich progress bar when stdout is a terminal, else periodic log lines (LogProgress)."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return LogProgress(every_s=every_s)


class ModelSummary(LightningModelSummary):
    """Lightning's model summary in the log, without its FLOPs column and line: Lightning counts
    FLOPs only for a module with an example input, so for QUEST's it printed `Total FLOPs: 0`."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *columns
        )
        log.info("model summary\n%s", "\n".join(l for l in table.splitlines() if "flops" not in l.lower()))


def _format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds))) if math.isfinite(seconds) else "?"


class LogProgress(ProgressBar):
    """Plain progress lines (epoch, step/total, loss, images/s, ETA) every `every_s` seconds."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        if not every_s >= 0:
            raise ValueError(f"callbacks.rich_progress_bar.every_s={every_s!r}: must be a number >= 0")
        self.every_s = float(every_s)
        self._enabled = True
        self._last_line = 0.0
        self._images = 0
        self._fit_start = 0.0
        self._batches_done = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _write(self, trainer: L.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            log.info(text)

    def _epoch(self, trainer: L.Trainer) -> str:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        return f"epoch {trainer.current_epoch + 1}/{total}"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.monotonic()
        self._batches_done = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_line = time.monotonic()
        self._images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_done += 1
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._images += int(x.shape[0]) if torch.is_tensor(x) else 0
        now = time.monotonic()
        total = self.total_train_batches
        last_of_epoch = math.isfinite(total) and batch_idx + 1 >= total
        if now - self._last_line < self.every_s and not last_of_epoch:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_text = f" loss {float(loss):.4f}" if torch.is_tensor(loss) else ""
        rate = self._images / max(now - self._last_line, 1e-9)
        epochs_left = (trainer.max_epochs or 0) - trainer.current_epoch - 1
        batches_left = (total - batch_idx - 1) + max(epochs_left, 0) * total if math.isfinite(total) else math.inf
        per_batch = (now - self._fit_start) / self._batches_done
        steps = f"{batch_idx + 1}/{total if math.isfinite(total) else '?'}"
        self._write(
            trainer,
            f"{self._epoch(trainer)} step {steps}{loss_text} | {rate:.1f} images/s | ETA {_format_eta(batches_left * per_batch)}",
        )
        self._last_line, self._images = now, 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = trainer.callback_metrics
        shown = " ".join(f"{k} {float(metrics[k]):.4f}" for k in ("val/acc", "val/loss") if k in metrics)
        if shown:
            self._write(trainer, f"{self._epoch(trainer)} {shown}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = " ".join(f"{k} {float(metrics[k]):.4f}" for k in ("test/acc", "test/loss") if k in metrics)
        if shown:
            self._write(trainer, f"test {shown}")
