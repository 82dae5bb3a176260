"""Checkpoints a run can always resume from.

- `AtomicCheckpointIO`: every checkpoint is written to a temporary file in the same folder, synced,
  then renamed over its name, so a checkpoint's name never holds a truncated file (a full disk or a
  kill leaves the previous checkpoint, and the temporary file is removed on a write error).
- `LastCheckpoint`: `last.ckpt` is the state after the last completed epoch, always (not only when
  val/acc improved), and, with `every_n_steps`, after every n-th optimizer step too, so a long epoch
  resumes mid-epoch (the training loader is stateful: quest/data/loader.py). It also ends a run that
  received SIGTERM or SIGINT: at the next step boundary it writes `last.ckpt` and raises
  `RunInterrupted`.
"""
from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

LAST_NAME = "last.ckpt"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, read-only folder)."""


class RunInterrupted(Exception):
    """A stop signal ended training; `last.ckpt` holds the state to resume from."""

    def __init__(self, signame: str, checkpoint: str | None) -> None:
        self.signame, self.checkpoint = signame, checkpoint
        where = f"resume with ckpt_path={checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(f"stopped by {signame}; {where}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to memory, write `.<name>.tmp-<pid>` beside the target, fsync, os.replace onto the name."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised first: a failed write then names its OS error
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise CheckpointWriteError(e.errno, f"could not write checkpoint {path}: {e.strerror or e}") from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class LastCheckpoint(Checkpoint):
    """Writes `<dirpath>/last.ckpt` at the end of every training epoch (after its validation) and,
    when `every_n_steps` is set, every n optimizer steps; stops the run on SIGTERM / SIGINT."""

    def __init__(self, dirpath: str, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and not (isinstance(every_n_steps, int) and every_n_steps >= 1):
            raise ValueError(f"callbacks.last_checkpoint.every_n_steps={every_n_steps!r}: must be null or an integer >= 1")
        self.path = Path(dirpath) / LAST_NAME
        self.every_n_steps = every_n_steps
        self.stop_signal: str | None = None
        self._saved_step: int | None = None
        self._previous_handlers: dict[int, Any] = {}

    # -- stop signals ------------------------------------------------------------------------
    def request_stop(self, signum: int, frame: FrameType | None = None) -> None:
        """Signal handler: stop at the next step boundary; a second signal acts at once."""
        if self.stop_signal is not None:
            self.restore_signal_handlers()
            signal.raise_signal(signum)
            return
        self.stop_signal = signal.Signals(signum).name

    def install_signal_handlers(self) -> None:
        """Route SIGTERM and SIGINT to `request_stop` (main thread only; Lightning chains its own)."""
        for sig in STOP_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self.request_stop)

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _stop_if_requested(self, trainer: L.Trainer, save: bool) -> None:
        # under DDP Lightning itself stops every process at the next batch (SIGTERMException)
        if self.stop_signal is None or trainer.world_size > 1:
            return
        if save:
            self.save(trainer)
        raise RunInterrupted(self.stop_signal, str(self.path) if self.path.exists() else None)

    # -- saving ------------------------------------------------------------------------------
    def save(self, trainer: L.Trainer) -> None:
        if self._saved_step == trainer.global_step:  # the same on every process (a collective save under DDP)
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state: a resume needs it (and Lightning stays quiet)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch's validation and its end-of-epoch checkpoint follow
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)
        self._stop_if_requested(trainer, save=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning validates before on_train_epoch_end, and calls checkpoint callbacks last
        self.save(trainer)
        self._stop_if_requested(trainer, save=False)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        self._stop_if_requested(trainer, save=False)


# -- the run's identity, recorded in every checkpoint and checked on resume ------------------------
# What a checkpoint's weights mean: resuming them under another value of any of these keys would
# train (and report) a different network than the one the checkpoint holds.
IDENTITY_KEYS = ("precision", "model", "neuron", "encoding", "device.name", "data.num_classes")
CONFIG_KEY = "quest_config"


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The IDENTITY_KEYS of a resolved config, flattened to dotted keys."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            flat[prefix] = value

    for key in IDENTITY_KEYS:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        walk(key, node)
    return flat


class RecordConfig(L.Callback):
    """Stores the run's identity (IDENTITY_KEYS of its resolved config) in every checkpoint."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.identity = identity(config)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.identity


class TrainingClock(L.Callback):
    """The run's wall time across resumes: every checkpoint stores the seconds the run has taken up
    to it, and a resumed run's clock starts from there, so results.json's wall_time_s is that of the
    whole run (the work lost after the last checkpoint is counted once, when it is redone)."""

    def __init__(self) -> None:
        self.before_resume_s = 0.0
        self._start = time.monotonic()
        self._fitted = False

    def elapsed_s(self) -> float:
        return self.before_resume_s + time.monotonic() - self._start

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed_s()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self._fitted:  # a resume; not the test's reload of this run's own checkpoint
            self.before_resume_s = float(state.get("elapsed_s", 0.0))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fitted = True


def check_checkpoint(path: str | Path, config: dict[str, Any], key: str = "ckpt_path") -> dict[str, Any]:
    """`key` (ckpt_path: resume; init_from: start from its weights) must name a whole Lightning
    checkpoint of this network: one ValueError line otherwise. Returns the checkpoint (memory-mapped)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file, pickle errors ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{key}={path}: not a readable checkpoint (truncated or not a torch file: {reason[:160]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "loops" not in ckpt:
        raise ValueError(f"{key}={path}: not a Lightning training checkpoint (no state_dict/loops)")
    recorded = ckpt.get(CONFIG_KEY)
    if not recorded:
        return ckpt  # written before checkpoints recorded their config: nothing to compare
    mine = identity(config)
    diffs = [f"{k}={recorded.get(k)!r} in the checkpoint, {mine.get(k)!r} in this run"
             for k in sorted(set(recorded) | set(mine)) if recorded.get(k) != mine.get(k)]
    if diffs:
        more = f" (and {len(diffs) - 2} more)" if len(diffs) > 2 else ""
        verb = "resume" if key == "ckpt_path" else "start"
        raise ValueError(f"{key}={path}: trained as another network: {'; '.join(diffs[:2])}{more}; "
                         f"{verb} with the checkpoint's settings")
    return ckpt


def load_weights(module: torch.nn.Module, ckpt: dict[str, Any]) -> None:
    """Fine-tuning (`init_from`): the module takes the checkpoint's weights and scales (its whole
    state_dict, strictly); optimizer, schedule, epoch count and monitors start fresh."""
    module.load_state_dict(ckpt["state_dict"], strict=True)
