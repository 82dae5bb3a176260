"""A trained run as the exporters see it: its config, its network with the checkpoint's weights,
and its provenance (the commit and config that trained it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from quest.models.vgg import SpikingVGG
from quest.results import RESULTS_FILE, read_json, source_commit


class ExportError(ValueError):
    """An export that cannot be made; the message is one line naming the reason."""


@dataclass
class TrainedRun:
    checkpoint: Path
    run_dir: Path
    config: DictConfig  # the resolved config the run trained with
    model: SpikingVGG  # in eval mode, on the CPU, with the checkpoint's weights
    results: dict[str, Any]  # the run's results.json ({} when absent)

    def provenance(self) -> dict[str, Any]:
        """What trained the exported net and what exported it."""
        trained = self.results.get("source") or {"commit": None, "dirty": None}
        return {
            "checkpoint": str(self.checkpoint),
            "run_dir": str(self.run_dir),
            "trained_by": trained,  # commit None: the run predates commit recording
            "exported_by": source_commit(),
            "overrides": self.results.get("overrides"),
            "test_acc": self.results.get("test_acc"),
            "config": {k: v for k, v in OmegaConf.to_container(self.config, resolve=False).items() if k != "hydra"}
            if "hydra" in self.config else OmegaConf.to_container(self.config, resolve=True),
        }


def _run_config(run_dir: Path, results: dict[str, Any]) -> DictConfig:
    if results.get("config"):
        return OmegaConf.create(results["config"])
    hydra_cfg = run_dir / ".hydra" / "config.yaml"
    if hydra_cfg.exists():
        return OmegaConf.load(hydra_cfg)
    raise ExportError(f"{run_dir}: no {RESULTS_FILE} with a config and no .hydra/config.yaml beside the checkpoint")


def load_run(checkpoint: str | Path) -> TrainedRun:
    """The run of `<run>/checkpoints/<name>.ckpt` (a run folder means its checkpoints/last.ckpt)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ExportError(f"checkpoint {path}: no such file")
    run_dir = path.parent.parent
    results = read_json(run_dir / RESULTS_FILE) or {}
    cfg = _run_config(run_dir, results)
    OmegaConf.set_struct(cfg, False)
    cfg.model.channels_last = False
    model = instantiate(cfg.model)
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    prefix = "net._orig_mod." if any(k.startswith("net._orig_mod.") for k in state) else "net."
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return TrainedRun(path, run_dir, cfg, model.eval(), results)
