"""One training run from a composed config: check, build, fit, test, record.

Bad input is answered before training with one line naming the key. A run folder's results.json
says "running" until the run ends, then "completed" (with the results), "failed" (with the
reason) or "interrupted" (SIGTERM/SIGINT: with the signal and the checkpoint to resume from; the
process exits 128 + the signal number). In a multirun a failed job returns instead of raising, so
the other jobs go on; an interrupted one stops the sweep, as the signal was meant for it.
"""
from __future__ import annotations

import inspect
import logging
import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from quest.checkpoints import (
    LAST_NAME, AtomicCheckpointIO, CheckpointWriteError, LastCheckpoint, RecordConfig, RunInterrupted, TrainingClock,
    check_checkpoint, load_weights,
)
from quest.config_checks import check_run_inputs, validate_config
from quest.lit_module import NonFiniteLossError, QuestModule
from quest.not_training import changes_training
from quest.loggers import build_loggers
from quest.device.mapping import DeviceMapping
from quest.device.patterns import ENUMERATION_LIMIT
from quest.energy.record import headline, last_write_epoch, reselect_pattern
from quest.run_folder import discard_if_fresh, lock_job_folder, release_folder
from quest.results import (ENERGY_FILE, RESULTS_FILE, is_completed, observed_status, read_json, source_commit,
                           write_json_atomic)

log = logging.getLogger("quest")

BUILD_ERRORS = (ValueError, KeyError, InstantiationException, OmegaConfBaseException, FileNotFoundError)


@dataclass
class RunParts:
    datamodule: L.LightningDataModule
    module: QuestModule
    trainer: L.Trainer
    callbacks: list[L.Callback]


def one_line(err: BaseException) -> str:
    """The root cause of an error as one line (Hydra wraps constructor errors)."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _hydra_context() -> tuple[bool, str, str | None]:
    """(multirun?, run name from the overrides, W&B group = sweep folder name)."""
    if not HydraConfig.initialized():
        return False, "run", None
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    name = (hc.job.override_dirname or "default").replace("'", "")
    group = Path(hc.sweep.dir).name if multirun else None
    return multirun, name, group


def build(cfg: DictConfig, run_name: str, group: str | None) -> RunParts:
    """Everything a run needs, checked before any training."""
    validate_config(cfg)
    check_run_inputs(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.get("ckpt_path"):
        check_checkpoint(cfg.ckpt_path, config)
    start = check_checkpoint(cfg.init_from, config, key="init_from") if cfg.get("init_from") else None
    datamodule = instantiate(cfg.data)
    datamodule.load()  # a missing or corrupt data file stops here
    net = instantiate(cfg.model)
    module = instantiate(cfg.module, net=net)
    if start is not None:
        load_weights(module, start)
    callbacks = instantiate_callbacks(cfg)
    callbacks += [RecordConfig(config), TrainingClock()]
    loggers = build_loggers(cfg, run_name, group)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    return RunParts(datamodule, module, trainer, callbacks)


def device_mapping(cfg: DictConfig) -> DeviceMapping:
    """The run's device mapping, built once from `device`, `precision.bits`, `neuron`, `pattern`
    (`pattern.enumeration_limit=N`: search the best pattern above N patterns; default 50,000)."""
    limit = cfg.pattern.get("enumeration_limit", ENUMERATION_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"pattern.enumeration_limit={limit!r}: must be an integer >= 1")
    return DeviceMapping.from_config(cfg.device, cfg.precision.bits, cfg.neuron, cfg.pattern.selection, limit)


def instantiate_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The configured callbacks; those that take a `mapping` (the energy monitors) share the run's one."""
    mapping: DeviceMapping | None = None
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if not node or "_target_" not in node:
            continue
        if "mapping" in inspect.signature(get_object(node._target_)).parameters:
            mapping = mapping or device_mapping(cfg)
            callbacks.append(instantiate(node, _partial_=True)(mapping=mapping))  # Hydra would copy it into a config
        else:
            callbacks.append(instantiate(node))
    return callbacks


def _finish_loggers(trainer: L.Trainer | None) -> None:
    for lg in (trainer.loggers if trainer is not None else []):
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()


def train(cfg: DictConfig) -> float | None:
    """Run one job; returns the test accuracy (None when the job failed)."""
    out = Path(cfg.paths.output_dir)
    multirun, run_name, group = _hydra_context()
    if multirun and cfg.get("skip_completed") and is_completed(out):
        done = read_json(out / RESULTS_FILE) or {}
        log.info("skipping %s: completed in an earlier run of this sweep", out.name)
        return objective_values(cfg, done)
    if not multirun:
        return _train(cfg, out, multirun, run_name, group)  # the run folder's claim holds its lock
    # before taking the job folder's lock: a killed job is one whose lock nobody holds
    resume_from = resume_interrupted_job(cfg, out) if cfg.get("skip_completed") else None
    holder = lock_job_folder(out)
    if holder is not None:
        log.error("job %s: in use by another run (pid %s); it is left as it is", out, holder)
        return None
    try:
        return _train(cfg, out, multirun, run_name, group, resume_from)
    finally:
        release_folder(out)


def _train(cfg: DictConfig, out: Path, multirun: bool, run_name: str, group: str | None,
           resume_from: str | None = None) -> float | None:
    """The job itself, in its folder (locked by this process), optionally resuming from `resume_from`."""
    if resume_from is not None:
        with open_dict(cfg):
            cfg.ckpt_path = resume_from
    record: dict[str, Any] = {
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_name": run_name,
        "overrides": [o.replace("'", "") for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else [],
        "config": OmegaConf.to_container(cfg, resolve=True),
        "source": source_commit(),  # the code that trains: quest-export copies it into its files
        "host": socket.gethostname(),  # with the folder's lock: a "running" record whose process is gone
        "pid": os.getpid(),            # reads as "killed" (quest.results.observed_status)
    }
    if resume_from is not None:
        record["resumed_from"] = resume_from
    write_json_atomic(out / RESULTS_FILE, record)
    if multirun and reuse_pattern_sibling(cfg, out, record):
        return objective_values(cfg, record)

    def fail(kind: str, message: str, code: int) -> None:
        record.update(status="failed", error_kind=kind, error=message)
        if kind == "config error" and not multirun:
            # a run that never started: one plain line, as for errors found before Hydra, and
            # no folder left behind (unless the folder was there before: a resume)
            if not discard_if_fresh(out):
                write_json_atomic(out / RESULTS_FILE, record)
            exit_on_config_error(message)
        write_json_atomic(out / RESULTS_FILE, record)
        log.error("%s: %s", kind, message)
        if not multirun:
            raise SystemExit(code)

    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        parts = build(cfg, run_name, group)
    except BUILD_ERRORS as e:
        fail("config error", one_line(e), 2)
        return None

    trainer = parts.trainer
    warn_not_realizable(parts.callbacks)
    for lg in trainer.loggers:
        lg.log_hyperparams(record["config"])
    last = next((c for c in parts.callbacks if isinstance(c, LastCheckpoint)), None)
    if last is not None:
        last.install_signal_handlers()
    try:
        trainer.fit(parts.module, parts.datamodule, ckpt_path=cfg.get("ckpt_path"))
        # read before testing resets the metrics; under ddp_spawn the module's own metric state
        # stays in the worker, the logged value comes back
        best_val = trainer.callback_metrics.get("val/acc_best")
        best = best_checkpoint(trainer)
        test_from = best if cfg.test_ckpt == "best" and best else None
        trainer.test(parts.module, parts.datamodule, ckpt_path=test_from, verbose=False)
    except (RunInterrupted, KeyboardInterrupt, SystemExit) as e:  # SystemExit: Lightning's answer to Ctrl+C
        _finish_loggers(trainer)
        interrupted(record, out, e, last, trainer, exit_process=not (multirun and own_process_job()))
        return None
    except NonFiniteLossError as e:
        _finish_loggers(trainer)
        fail("non-finite loss", f"{e}; {resume_hint(last)}", 1)
        return None
    except Exception as e:  # noqa: BLE001 - any training failure is recorded, not left half-written
        try:
            (out / "error.log").write_text(traceback.format_exc())
        except OSError as log_error:
            log.error("could not write %s: %s", out / "error.log", log_error)
        _finish_loggers(trainer)
        kind = "checkpoint write error" if isinstance(e, CheckpointWriteError) else "training error"
        fail(kind, f"{one_line(e)} (traceback in {out / 'error.log'})", 1)
        return None
    finally:
        if last is not None:
            last.restore_signal_handlers()
    if not trainer.is_global_zero:
        return None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    clock = next(c for c in parts.callbacks if isinstance(c, TrainingClock))  # build() adds it to every run
    record.update(
        status="completed",
        test_acc=metrics.get("test/acc"),
        test_loss=metrics.get("test/loss"),
        best_val_acc=float(best_val if best_val is not None else parts.module.val_acc_best.compute()),
        epochs=trainer.current_epoch,
        global_steps=trainer.global_step,
        wall_time_s=round(clock.elapsed_s(), 2),  # the whole run's, across resumes
        **({"wall_time_before_resume_s": round(clock.before_resume_s, 2)} if clock.before_resume_s else {}),
        test_checkpoint=(best_checkpoint(trainer) if cfg.test_ckpt == "best" else None) or "last",
        energy_file=ENERGY_FILE if (out / ENERGY_FILE).exists() else None,
        energy=headline(read_json(out / ENERGY_FILE)),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_json_atomic(out / RESULTS_FILE, record)
    publish_report(trainer, out, multirun)
    _finish_loggers(trainer)
    log.info(
        "test accuracy %.4f (best val %.4f) after %d epochs in %.1fs; results in %s",
        record["test_acc"] or float("nan"), record["best_val_acc"], record["epochs"], record["wall_time_s"], out,
    )
    return objective_values(cfg, record)


def warn_not_realizable(callbacks: list[L.Callback]) -> None:
    """One line at the start when the device cannot host this precision or neuron (energy.json says it too)."""
    for cb in callbacks:
        ctx = getattr(cb, "ctx", None)
        if ctx is not None and getattr(ctx, "realizable", True) is False:
            log.warning("device energy: %s; training goes on, energy.json records no device energy", ctx.not_realizable)
            return


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best-by-val/acc checkpoint's path (the first ModelCheckpoint's), if one was written."""
    ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    return (ckpt.best_model_path or None) if ckpt is not None else None


def resume_hint(last: LastCheckpoint | None) -> str:
    """Where a stopped run can resume from, in words."""
    if last is not None and last.path.exists():
        return f"the last good checkpoint is {last.path}"
    return "no checkpoint was written"


def interrupted(record: dict[str, Any], out: Path, err: BaseException, last: LastCheckpoint | None,
                trainer: L.Trainer, exit_process: bool = True) -> None:
    """Record status "interrupted" with the signal and the checkpoint, then exit 128 + signal number
    (a sweep job in its own process returns instead: the sweep's summary reports it, and exits 1)."""
    if isinstance(err, RunInterrupted):
        name = err.signame
    elif isinstance(err, SIGTERMException):
        name = "SIGTERM"
    else:  # Ctrl+C that reached Lightning (a second one, or one outside the training loop)
        name = (last.stop_signal if last is not None else None) or "SIGINT"
    checkpoint = str(last.path) if last is not None and last.path.exists() else None
    record.update(
        status="interrupted",
        signal=name,
        resume_checkpoint=checkpoint,
        epochs=trainer.current_epoch,
        global_steps=trainer.global_step,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if trainer.is_global_zero:
        write_json_atomic(out / RESULTS_FILE, record)
    hint = f"resume with ckpt_path={checkpoint}" if checkpoint else "no checkpoint to resume from"
    log.error("interrupted by %s after %d steps; %s", name, trainer.global_step, hint)
    if exit_process:
        raise SystemExit(128 + int(getattr(signal.Signals, name, signal.SIGTERM)))


def publish_report(trainer: L.Trainer, out: Path, multirun: bool) -> None:
    """A single run gets its report.md and figures; with W&B, the figures go to the run too.

    (A sweep's report is written once for all its jobs by quest.sweep_summary.)
    """
    wandb_logger = next((lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"), None)
    if multirun and wandb_logger is None:
        return
    try:
        from quest.report import write_report

        report = write_report(out)
    except Exception as e:  # noqa: BLE001 - the run's results are already safe on disk
        log.warning("could not write the report: %s", e)
        return
    if wandb_logger is not None:
        import wandb

        figures = sorted(report.parent.glob("report_figs/**/*.png"))
        wandb_logger.experiment.log({f"report/{p.parent.name}/{p.stem}": wandb.Image(str(p)) for p in figures})


def objective_values(cfg: DictConfig, record: dict[str, Any]) -> Any:
    """What the sweeper receives: one number, or a list for multi-objective (Optuna) sweeps."""
    values = []
    for name in cfg.get("objectives") or ["test_acc"]:
        value = record.get(name, (record.get("energy") or {}).get(name))
        if value is None:
            log.warning("objective %s is not available for this run (%s)", name,
                        (record.get("energy") or {}).get("not_realizable") or "not measured")
            return None
        values.append(float(value))
    return values[0] if len(values) == 1 else values


def resume_interrupted_job(cfg: DictConfig, out: Path) -> str | None:
    """A re-run sweep job whose earlier run was interrupted, or killed (its process gone while it
    said "running"), continues from the last.ckpt in its own folder: the one the record names, or,
    for a sweep folder moved since (copied to another disk, committed and checked out elsewhere),
    the same file at the folder's new place."""
    earlier = read_json(out / RESULTS_FILE) or {}
    status = observed_status(out, earlier)
    if cfg.get("ckpt_path") or status not in ("interrupted", "killed"):
        return None
    folder = OmegaConf.select(cfg, "callbacks.last_checkpoint.dirpath", default=None) or out / "checkpoints"
    checkpoint = Path(folder) / LAST_NAME
    if not checkpoint.is_file():
        return None
    how = f"interrupted by {earlier.get('signal')}" if status == "interrupted" else "killed: its process ended without a word"
    log.info("resuming %s from %s (%s)", out.name, checkpoint, how)
    return str(checkpoint)


def own_process_job() -> bool:
    """True when each sweep job runs in its own process (submitit), not in the sweep's process."""
    return HydraConfig.initialized() and "submitit" in str(HydraConfig.get().launcher.get("_target_", ""))


def training_identity(overrides: list[str]) -> list[str]:
    """A sweep job's overrides without those that change no training (quest.not_training)."""
    return sorted(o for o in overrides if changes_training(o.split("=", 1)[0]))


def reuse_pattern_sibling(cfg: DictConfig, out: Path, record: dict[str, Any]) -> bool:
    """In a sweep, a job that differs from a completed one only in its pattern reuses its training."""
    if not HydraConfig.initialized():
        return False
    mine = training_identity(record["overrides"])
    for other in sorted(Path(HydraConfig.get().sweep.dir).glob(f"**/{RESULTS_FILE}")):
        if other.parent == out:
            continue
        done = read_json(other)
        if not done or done.get("status") != "completed" or done.get("reused_from"):
            continue
        if training_identity(done.get("overrides") or []) != mine:
            continue
        energy = read_json(other.parent / ENERGY_FILE)
        if energy is not None:
            try:
                mapping = device_mapping(cfg)
            except BUILD_ERRORS:  # e.g. a pattern number the device lacks: the job's own build says so
                return False
            chosen = mapping.select(write_best=last_write_epoch(energy).get("best_pattern"))
            write_json_atomic(out / ENERGY_FILE, reselect_pattern(energy, cfg.pattern.selection, chosen))
        reused = {k: v for k, v in done.items() if k not in ("config", "overrides", "run_name", "started")}
        record.update(reused, reused_from=str(other.parent), energy=headline(read_json(out / ENERGY_FILE)))
        write_json_atomic(out / RESULTS_FILE, record)
        log.info("pattern %s changes no training: reusing %s", cfg.pattern.selection, other.parent)
        return True
    return False


def exit_on_config_error(message: str) -> None:
    """Print one line to stderr and exit 2 (used before Hydra composes anything)."""
    print(f"config error: {message}", file=sys.stderr)
    raise SystemExit(2)
