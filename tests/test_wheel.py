"""An installed wheel (not editable) trains without the repository and records what the checkout does."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, run_train, subprocess_env
from helpers.records import assert_same_record


@pytest.mark.slow
def test_wheel_trains_from_outside_the_repository_like_the_checkout(tmp_path):
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("quest", "conf", "sweeps"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)], check=True)
    wheel = next((tmp_path / "dist").glob("quest_snn-*.whl"))
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)

    env = {k: v for k, v in subprocess_env().items() if k != "QUEST_ROOT"}
    env["PYTHONPATH"] = str(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([sys.executable, "-c", "import quest; print(quest.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where
    installed = subprocess.run([sys.executable, "-m", "quest.train", *TINY, "hydra.run.dir=run"], cwd=elsewhere,
                               env=env, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    editable = run_train([*TINY, f"hydra.run.dir={tmp_path / 'checkout'}"])
    assert editable.returncode == 0, editable.stderr[-3000:]
    assert_same_record(json.loads((tmp_path / "checkout" / "energy.json").read_text()),
                       json.loads((elsewhere / "run" / "energy.json").read_text()))
    assert os.path.isdir(site / "quest" / "conf" / "device") and not (site / "quest" / "conf").is_symlink()
