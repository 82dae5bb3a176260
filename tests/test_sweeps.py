"""Multirun sweeps through the real train.py: the six-job grid, failures, re-runs, patterns, DDP."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import SHARED_NPZ, TINY, read_results, run_train

pytestmark = pytest.mark.slow


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/results.json"))


def test_six_job_grid_each_logged_to_wandb(tmp_path):
    """python train.py -m precision=2,3,4 neuron=if_hard,lif_soft, quickstart-sized, W&B default."""
    args = [a for a in TINY if not a.startswith("logger=")]
    proc = run_train(["-m", *args, "precision=2,3,4", "neuron=if_hard,lif_soft", f"hydra.sweep.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(tmp_path)
    assert len(jobs) == 6
    seen = set()
    for job in jobs:
        res = read_results(job)
        assert res["status"] == "completed", res.get("error")
        seen.add((res["config"]["precision"]["bits"], res["config"]["neuron"]["name"]))
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # its own W&B run
        assert "'" not in job.name  # readable folder names: precision=2, not precision='2'
    assert seen == {(b, n) for b in (2, 3, 4) for n in ("if_hard", "lif_soft")}
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 6}
    # 3-bit on the 3-state Sk-MTJ and LIF anywhere on it: trained, energy not realizable
    three_bit = next(j for j in jobs if "precision=3" in j.name and "if_hard" in j.name)
    assert read_results(three_bit)["energy"]["not_realizable"].startswith("not realizable on sk_mtj_3state")


def test_failed_job_does_not_stop_the_sweep_and_reruns_skip_finished_jobs(tmp_path):
    args = [*TINY, "neuron.theta=0.5,-1.0", f"hydra.sweep.dir={tmp_path}"]
    proc = run_train(["-m", *args])
    assert proc.returncode == 1, proc.stderr[-3000:]  # a sweep with a failed job exits non-zero
    assert "1 of 2 jobs of this run did not complete" in proc.stdout + proc.stderr
    jobs = {read_results(j)["config"]["neuron"]["theta"]: read_results(j) for j in job_dirs(tmp_path)}
    assert jobs[0.5]["status"] == "completed"
    assert jobs[-1.0]["status"] == "failed" and "neuron.theta=-1.0: must be > 0" in jobs[-1.0]["error"]
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 1, "failed": 1}
    assert "job " in proc.stdout + proc.stderr and "failed: neuron.theta=-1.0" in proc.stdout + proc.stderr
    finished = next(j for j in job_dirs(tmp_path) if read_results(j)["status"] == "completed")
    stamp = (finished / "results.json").stat().st_mtime_ns
    again = run_train(["-m", *args])
    assert again.returncode == 1
    assert "skipping" in again.stdout + again.stderr
    assert (finished / "results.json").stat().st_mtime_ns == stamp  # not retrained


def test_pattern_axis_reuses_training(tmp_path):
    proc = run_train(["-m", *TINY, "pattern=best,1,6", f"hydra.sweep.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {read_results(j)["config"]["pattern"]["selection"]: (j, read_results(j)) for j in job_dirs(tmp_path)}
    assert set(results) == {"best", 1, 6}
    trained = [r for _, r in results.values() if not r.get("reused_from")]
    assert len(trained) == 1  # one training for three patterns
    for sel in (1, 6):
        job, res = results[sel]
        assert res["status"] == "completed" and res["energy"]["selected_pattern"] == sel
        energy = json.loads((job / "energy.json").read_text())
        assert energy["write"]["selected_pattern"] == sel
    write_1 = results[1][1]["energy"]["write_energy_per_sample_fJ"]
    write_6 = results[6][1]["energy"]["write_energy_per_sample_fJ"]
    assert write_1 != write_6  # same transitions, different pattern energies


def test_real_cifar10_slice_trains_above_chance(tmp_path):
    if not SHARED_NPZ.exists():
        pytest.skip(f"shared CIFAR-10 arrays not found at {SHARED_NPZ}")
    proc = run_train([
        "experiment=quickstart", "logger=csv", "data=cifar10_npz", f"data.path={SHARED_NPZ}",
        "data.train_subset=2000", "data.val_size=500", "trainer.max_epochs=2",
        "~callbacks.rich_progress_bar", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}",
    ])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "completed"
    assert res["test_acc"] > 0.2  # 10 classes: chance is 0.1; the full 10,000-image test set


def test_ddp_two_cpu_processes_count_like_one(tmp_path):
    """Activity counts are summed across processes: 2-process DDP equals 1 process on the same data.
    The run's record and its CSV log are those of a single process too (ddp_spawn trains and tests
    in worker processes)."""
    frozen = ["module.lr=1e-12", "module.weight_decay=0", "data.val_size=50", "data.eval_batch_size=25",
              "callbacks.activity_monitor.num_batches=10", "trainer.max_epochs=2"]
    one = run_train([*TINY, *frozen, "trainer=cpu", f"hydra.run.dir={tmp_path / 'one'}"])
    two = run_train([*TINY, *frozen, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'two'}"])
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    rec_one, rec_two = read_results(tmp_path / "one"), read_results(tmp_path / "two")
    assert rec_one["epochs"] == rec_two["epochs"] == 2
    assert rec_two["global_steps"] > 0
    assert rec_two["test_checkpoint"].endswith(".ckpt")
    with open(tmp_path / "two" / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val/acc"]) for r in rows if r["val/acc"]]
    test = [float(r["test/acc"]) for r in rows if r["test/acc"]]
    assert len(val) == 2 and len(test) == 1  # fit rows kept when the test phase's new processes log
    assert rec_two["best_val_acc"] == pytest.approx(max(val)) and rec_two["test_acc"] == pytest.approx(test[0])
    a = json.loads((tmp_path / "one" / "energy.json").read_text())["activity"]["epochs"][-1]
    b = json.loads((tmp_path / "two" / "energy.json").read_text())["activity"]["epochs"][-1]
    assert a["samples"] == b["samples"] == 50
    for name, layer in a["layers"].items():
        other = b["layers"][name]
        for key in ("spike_rate", "aor", "weight_sparsity", "input_spike_rate"):
            assert other[key] == pytest.approx(layer[key], rel=1e-6), (name, key)
        assert other["effective_ops_per_sample_by_level"] == pytest.approx(layer["effective_ops_per_sample_by_level"], rel=1e-6)


def test_optuna_search_writes_pareto_set(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    proc = run_train(["-m", "+sweep=optuna_pareto_quick", *TINY[1:], "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    pareto = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert pareto["solutions"], "no Pareto solutions"
    for sol in pareto["solutions"]:
        acc, ops = sol["values"]
        assert 0.0 <= acc <= 1.0 and ops > 0
        assert set(sol["params"]) == {"precision", "encoding.time_steps", "neuron.theta", "neuron.leak"}
    assert len(job_dirs(tmp_path)) == 3
