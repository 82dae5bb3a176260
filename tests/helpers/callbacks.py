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


class TraceAndSignal(L.Callback):
    """Appends one line per trained batch to `trace` (epoch, batch index, global step and the
    batch's labels, which identify the data order), and sends this process `signal` at the start
    of the batch after optimizer step `at_step` (SIGKILL: as `kill -9`)."""

    def __init__(self, trace: str | None = None, at_step: int | None = None, signal: str = "SIGKILL") -> None:
        self.trace, self.at_step, self.signal = trace, at_step, signal

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.at_step is not None and trainer.global_step == self.at_step:
            import os
            import signal

            self.at_step = None
            os.kill(os.getpid(), getattr(signal, self.signal))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.trace is None:
            return
        labels = "".join(str(int(v)) for v in batch[1].tolist())
        with open(self.trace, "a") as f:
            f.write(f"{trainer.current_epoch} {batch_idx} {trainer.global_step} {labels}\n")


class HoldUntilFile(L.Callback):
    """Holds the run at its start (folder claimed, nothing trained) until `release` exists, so that
    a test can act while the run is certainly alive; gives up after `timeout_s`."""

    def __init__(self, release: str, timeout_s: float = 600.0) -> None:
        self.release, self.timeout_s = release, timeout_s

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time
        from pathlib import Path

        deadline = time.monotonic() + self.timeout_s
        while not Path(self.release).exists() and time.monotonic() < deadline:
            time.sleep(0.1)


class CountTransitionsAfterEveryStep(L.Callback):
    """The transition counts by their definition: every quantized layer's levels computed right after
    every optimizer step and compared with the step before; per epoch and for the first epoch's
    batches [0, window) written to `out` (JSON) at the end of training."""

    def __init__(self, out: str, window: int = 10) -> None:
        self.out, self.window = out, window
        self.prev: dict[str, torch.Tensor] = {}
        self.epochs: list[dict[str, list]] = []
        self.early: dict[str, torch.Tensor] = {}

    def _levels(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        from quest.snn.quantizer import mint_levels

        return {n: mint_levels(b.conv.weight, b.quantizer.scale(), b.quantizer.q_max)
                for n, b in pl_module.net.device_layers() if b.quantized}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prev = self._levels(pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append({})

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        from quest.monitors.transitions import transition_counts

        cur = self._levels(pl_module)
        for n, c in cur.items():
            counts = transition_counts(self.prev[n], c, pl_module.net.device_layers()[0][1].quantizer.q_max)
            ep = self.epochs[-1]
            ep[n] = counts if n not in ep else ep[n] + counts
            if trainer.current_epoch == 0 and batch_idx < self.window:
                self.early[n] = counts if n not in self.early else self.early[n] + counts
        self.prev = cur

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import json

        with open(self.out, "w") as f:
            json.dump({"epochs": [{n: c.tolist() for n, c in ep.items()} for ep in self.epochs],
                       "early": {n: c.tolist() for n, c in self.early.items()}}, f)
