"""Experiment loggers from the `logger` config group; W&B falls back to offline by itself."""
from __future__ import annotations

import csv
import logging
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc (where `wandb login` stores it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators(os.environ.get("WANDB_BASE_URL", "api.wandb.ai").split("//")[-1])
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


class _ContinuingMetricsWriter(ExperimentWriter):
    """Lightning's CSV writer that starts from the columns of an existing metrics.csv.

    Under ddp_spawn the test phase runs in fresh processes holding a copy of the writer made before
    training, whose column list is empty; Lightning's writer would then rewrite the file with the
    test columns only and fail on the training rows. This one reads the file's header first."""

    def _record_new_keys(self) -> set[str]:
        if not self.metrics_keys and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])
        return super()._record_new_keys()


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger whose metrics.csv keeps its training rows when testing runs in new
    processes (trainer=ddp_cpu); otherwise the same."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingMetricsWriter(log_dir=self.log_dir)
        return self._experiment


class _DropMessages(logging.Filter):
    """Drops log records that contain any of the given texts."""

    def __init__(self, *texts: str) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(t in str(record.msg) for t in self.texts)


def quiet_known_noise() -> None:
    """Drop console noise that is no news to a QUEST user: Lightning's litlogger tip, its note that
    QUEST brings its own model summary, and the deprecation warning torch raises inside
    Lightning's own _pytree helper."""
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessages) for f in rank_zero_log.filters):
        rank_zero_log.addFilter(_DropMessages("litlogger", "Skipping setting a default `ModelSummary`"))
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def build_loggers(cfg: DictConfig, run_name: str, group: str | None) -> list[Logger]:
    """Instantiate every logger under cfg.logger; W&B gets name, group and offline mode.

    An offline W&B run is silent (WANDB_SILENT, unless set): QUEST says in one line where it
    logs and how to sync it."""
    quiet_known_noise()
    loggers: list[Logger] = []
    for key, lg_cfg in (cfg.get("logger") or {}).items():
        if not isinstance(lg_cfg, DictConfig) or "_target_" not in lg_cfg:
            continue
        kwargs: dict[str, Any] = {}
        if lg_cfg._target_.endswith("WandbLogger"):
            kwargs = {"name": run_name, "group": group}
            mode = os.environ.get("WANDB_MODE", "")
            if not lg_cfg.get("offline") and mode not in ("offline", "disabled") and not wandb_has_credentials():
                kwargs["offline"] = True
                log.info(
                    "W&B: no credentials found, logging offline (sync later: wandb sync %s)",
                    Path(lg_cfg.save_dir) / "wandb" / "offline-run-*",
                )
            if kwargs.get("offline") or lg_cfg.get("offline") or mode in ("offline", "disabled"):
                os.environ.setdefault("WANDB_SILENT", "true")
        logger = instantiate(lg_cfg, **kwargs)
        init_kwargs = getattr(logger, "_wandb_init", None)
        if isinstance(init_kwargs, dict) and init_kwargs.get("anonymous", "") is None:
            # Lightning passes anonymous=None, which wandb >= 0.19 answers with a deprecation warning
            del init_kwargs["anonymous"]
        loggers.append(logger)
    return loggers
