"""The benchmark script runs with one command and writes its report (tiny settings)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, subprocess_env


@pytest.mark.slow
def test_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "bench_train_step.py"), "--batch-size", "2", "--steps", "2",
            "--warmup", "1", "--memory-repeats", "1", "--memory-steps", "1",
            "--variants", "quest", "quest-bf16", "floor", "spikingjelly", "--out", str(out),
        ],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    res = report["results"]
    assert {"quest", "quest-bf16", "floor", "quest+monitor"} <= set(res)
    for name in ("quest", "quest-bf16", "floor"):
        assert res[name]["median_ms"] > 0 and res[name]["memory"]["peak_rss_mib"] > 0
        assert res[name]["time_over_floor"] > 0 and res[name]["quest_bf16_time_over_this"] > 0
    assert "overhead_pct" in report["monitor"]
    assert report["data_pipeline"]["images_per_s"] > 0
    adam = report["optimizer_step"]
    assert adam["parameters"] > 1e7 and adam["foreach_ms"] > 0 and adam["fused_ms"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| quest-bf16 |" in table and "quest-bf16 time / this" in table and "fused (QUEST's training)" in table
    if "spikingjelly" not in res:  # the peers are an optional extra: skipped with the reason
        assert "pip install -e '.[bench]'" in report["skipped"]["spikingjelly"]


@pytest.mark.slow
def test_epoch_benchmark_runs_and_reports(tmp_path):
    """bench_epoch.py times QUEST's real pipeline and SpikingJelly's loop on the shared CIFAR-10 arrays."""
    from conftest import SHARED_NPZ

    out = tmp_path / "epoch"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "bench_epoch.py"), "--steps", "2", "--rounds", "1",
            "--width", "0.125", "--data", str(SHARED_NPZ), "--out", str(out),
        ],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["config"]["steps"] == 2 and report["config"]["val_batches"] == 1
    assert report["config"]["epoch_steps"] == 390
    assert report["results"]["quest"]["images_per_s"] > 0
    table = out.with_suffix(".md").read_text()
    assert "QUEST (train.py pipeline, monitors on)" in table
    if "spikingjelly" in report["results"]:
        assert report["results"]["quest"]["spikingjelly_images_per_s_over_quest"] > 0
        assert "SpikingJelly 2.0 (bare loop)" in table
    else:
        assert "pip install -e '.[bench]'" in report["skipped"]["spikingjelly"]
