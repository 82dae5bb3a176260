"""Experiment loggers from the `logger` config group; W&B falls back to offline by itself."""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
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


def build_loggers(cfg: DictConfig, run_name: str, group: str | None) -> list[Logger]:
    """Instantiate every logger under cfg.logger; W&B gets name, group and offline mode."""
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
                    "W&B: no credentials found, logging offline under %s (sync later with `wandb sync`)",
                    Path(lg_cfg.save_dir) / "wandb",
                )
        loggers.append(instantiate(lg_cfg, **kwargs))
    return loggers
