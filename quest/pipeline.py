"""One training run from a composed config: check, build, fit, test, record.

Bad input is answered before training with one line naming the key. A run folder's results.json
says "running" until the run ends, then "completed" (with the results) or "failed" (with the
reason); in a multirun a failed job returns instead of raising, so the other jobs go on.
"""
from __future__ import annotations

import inspect
import logging
import sys
import time
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
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from quest.config_checks import validate_config
from quest.lit_module import NonFiniteLossError, QuestModule
from quest.not_training import changes_training
from quest.loggers import build_loggers
from quest.device.mapping import DeviceMapping
from quest.device.patterns import ENUMERATION_LIMIT
from quest.energy.record import headline, last_write_epoch, reselect_pattern
from quest.results import ENERGY_FILE, RESULTS_FILE, is_completed, read_json, write_json_atomic

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
    datamodule = instantiate(cfg.data)
    datamodule.load()  # a missing or corrupt data file stops here
    net = instantiate(cfg.model)
    module = instantiate(cfg.module, net=net)
    callbacks = instantiate_callbacks(cfg)
    loggers = build_loggers(cfg, run_name, group)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return RunParts(datamodule, module, trainer, callbacks)


def device_mapping(cfg: DictConfig) -> DeviceMapping:
    """The run's device mapping, built once from `device`, `precision.bits`, `neuron`, `pattern`
    (`+pattern.enumeration_limit=N`: search the best pattern above N patterns; default 50,000)."""
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
        if "mapping" in inspect.signature(get_class(node._target_)).parameters:
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
    record: dict[str, Any] = {
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_name": run_name,
        "overrides": [o.replace("'", "") for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else [],
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json_atomic(out / RESULTS_FILE, record)
    if multirun and reuse_pattern_sibling(cfg, out, record):
        return objective_values(cfg, record)

    def fail(kind: str, message: str, code: int) -> None:
        record.update(status="failed", error_kind=kind, error=message)
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
    for lg in trainer.loggers:
        lg.log_hyperparams(record["config"])
    start = time.time()
    try:
        trainer.fit(parts.module, parts.datamodule, ckpt_path=cfg.get("ckpt_path"))
        # read before testing resets the metrics; under ddp_spawn the module's own metric state
        # stays in the worker, the logged value comes back
        best_val = trainer.callback_metrics.get("val/acc_best")
        ckpt = trainer.checkpoint_callback
        test_from = "best" if cfg.test_ckpt == "best" and ckpt is not None and ckpt.best_model_path else None
        trainer.test(parts.module, parts.datamodule, ckpt_path=test_from, verbose=False)
    except NonFiniteLossError as e:
        _finish_loggers(trainer)
        fail("non-finite loss", str(e), 1)
        return None
    except Exception as e:  # noqa: BLE001 - any training failure is recorded, not left half-written
        (out / "error.log").write_text(traceback.format_exc())
        _finish_loggers(trainer)
        fail("training error", f"{one_line(e)} (traceback in {out / 'error.log'})", 1)
        return None
    if not trainer.is_global_zero:
        return None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    ckpt = trainer.checkpoint_callback
    record.update(
        status="completed",
        test_acc=metrics.get("test/acc"),
        test_loss=metrics.get("test/loss"),
        best_val_acc=float(best_val if best_val is not None else parts.module.val_acc_best.compute()),
        epochs=trainer.current_epoch,
        global_steps=trainer.global_step,
        wall_time_s=round(time.time() - start, 2),
        test_checkpoint=(ckpt.best_model_path if cfg.test_ckpt == "best" and ckpt else "last"),
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
