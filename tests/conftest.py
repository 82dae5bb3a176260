"""Shared test helpers: compose the real Hydra configs, run the real train.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_NPZ = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10.npz"

# Small, fast settings on top of the quickstart experiment for smoke runs.
TINY = [
    "experiment=quickstart",
    "logger=csv",
    "trainer.max_epochs=1",
    "data.train_subset=100",
    "data.val_size=50",
    "model.width_mult=0.125",
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WANDB_API_KEY", None)
    env.update(QUEST_ROOT=str(ROOT), WANDB_SILENT="true", HYDRA_FULL_ERROR="0", PYTHONUNBUFFERED="1")
    # tests/ on the path so configs can name test-only callbacks (tests/helpers)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")]))
    return env


def run_train(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real train.py in a subprocess; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


import quest  # noqa: E402,F401 - registers QUEST's OmegaConf resolvers, as train.py's import does


@pytest.fixture
def compose_cfg():
    """compose_cfg(overrides) -> the composed train config, as train.py would see it."""

    def _compose(overrides: list[str] | None = None) -> DictConfig:
        os.environ.setdefault("QUEST_ROOT", str(ROOT))
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="train", overrides=overrides or [], return_hydra_config=True)

    return _compose
