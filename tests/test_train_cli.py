"""The real train.py: config errors, a smoke run, resume, NaN handling, W&B offline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, read_results, run_train


@pytest.mark.parametrize(
    "override,expected",
    [
        ("neuron=foo", "neuron=foo: allowed if_hard, if_soft, lif_hard, lif_soft"),
        ("precision=5", "precision=5: allowed 2, 3, 4, fp32"),
        ("encoding.time_steps=0", "encoding.time_steps=0: must be an integer >= 1"),
        ("neuron.surrogate=box", "neuron.surrogate='box': allowed"),
        ("pattern.selection=9", "pattern.selection=9: sk_mtj_3state at 2-bit has patterns 1..6"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1"),
        ("trainer.precision=bf16-true", "trainer.precision=bf16-true: allowed 32-true, 64-true, bf16-mixed"),
    ],
)
def test_bad_config_stops_with_one_line(tmp_path, override, expected):
    proc = run_train([*TINY, override, f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    error_lines = [l for l in out.splitlines() if "config error" in l]
    assert len(error_lines) == 1 and expected in error_lines[0], out[-2000:]
    assert "Traceback" not in out
    results = tmp_path / "results.json"
    assert not results.exists() or read_results(tmp_path)["status"] == "failed"
    assert not (tmp_path / "checkpoints").exists()


def test_missing_and_corrupt_data_files(tmp_path):
    missing = run_train([*TINY, "data=cifar10_npz", "data.path=/nonexistent/cifar.npz", f"hydra.run.dir={tmp_path / 'a'}"])
    assert missing.returncode == 2
    assert "data.path=/nonexistent/cifar.npz: no such file" in missing.stdout + missing.stderr
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    bad = run_train([*TINY, "data=cifar10_npz", f"data.path={corrupt}", f"hydra.run.dir={tmp_path / 'b'}"])
    assert bad.returncode == 2
    assert f"data.path={corrupt}: not a readable npz" in bad.stdout + bad.stderr
    assert not (tmp_path / "b").exists()  # a run that never started leaves no folder


def test_smoke_run_writes_results_energy_and_checkpoints(tmp_path):
    proc = run_train([*TINY, f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "completed"
    assert 0.0 <= res["test_acc"] <= 1.0 and res["epochs"] == 1 and res["wall_time_s"] > 0
    assert res["config"]["neuron"]["name"] == "if_hard" and res["config"]["precision"]["bits"] == 2
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    energy = json.loads((tmp_path / "energy.json").read_text())
    layers = energy["write"]["epochs"][-1]["layers"]
    assert list(layers) == ["conv2", "conv3", "conv4", "conv5", "conv6"]
    for rep in layers.values():
        assert sorted(rep["write_energy"], key=int) == ["1", "2", "3", "4", "5", "6"]
    act = energy["activity"]["epochs"][-1]["layers"]["conv2"]
    assert set(act["read_energy_per_sample_fJ"]) == {"1", "2", "3", "4", "5", "6"}
    assert 0.0 <= act["aor"] <= act["input_spike_rate"]


def test_bf16_mixed_precision_run(tmp_path):
    """trainer.precision=bf16-mixed: convs and linears in bf16, the membrane scan and quantizer in
    fp32; the run trains (loss falls) and the monitors still see 2-bit weight levels."""
    proc = run_train([*TINY, "trainer.max_epochs=2", "trainer.precision=bf16-mixed", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "completed" and res["config"]["trainer"]["precision"] == "bf16-mixed"
    assert 0.0 <= res["test_acc"] <= 1.0
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(losses) == 2 and losses[1] < losses[0], losses
    layers = json.loads((tmp_path / "energy.json").read_text())["write"]["epochs"][-1]["layers"]
    assert all(sum(map(sum, rep["transition_counts"])) > 0 for rep in layers.values())


def test_resume_from_last_checkpoint(tmp_path):
    first = run_train([*TINY, f"hydra.run.dir={tmp_path / 'first'}"])
    assert first.returncode == 0, first.stderr[-2000:]
    first_res = read_results(tmp_path / "first")
    steps = first_res["global_steps"]
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    # the checkpoint carries the best val acc so far and the run's wall time; a best above anything
    # the tiny run reaches must still be the resumed run's best (it was its second epoch's alone)
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["val_acc_best"] == pytest.approx(first_res["best_val_acc"])
    before_s = state["callbacks"]["TrainingClock"]["elapsed_s"]
    assert 0 < before_s <= first_res["wall_time_s"]
    state["val_acc_best"] = 0.99
    torch.save(state, ckpt)
    second = run_train([*TINY, "trainer.max_epochs=2", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'second'}"])
    assert second.returncode == 0, second.stderr[-2000:]
    res = read_results(tmp_path / "second")
    assert res["epochs"] == 2 and res["global_steps"] == 2 * steps
    assert res["best_val_acc"] == pytest.approx(0.99)
    assert res["wall_time_before_resume_s"] == pytest.approx(before_s, abs=0.01) and res["wall_time_s"] > before_s


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    proc = run_train([
        *TINY, "trainer.max_epochs=3",
        "+callbacks.poison._target_=helpers.callbacks.PoisonWeightsAtEpoch", "+callbacks.poison.epoch=1",
        f"hydra.run.dir={tmp_path}",
    ])
    assert proc.returncode == 1, proc.stderr[-2000:]
    res = read_results(tmp_path)
    assert res["status"] == "failed" and res["error_kind"] == "non-finite loss"
    assert "training loss became nan at epoch 1" in res["error"]
    import torch

    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_wandb_goes_offline_without_credentials(tmp_path):
    args = [a for a in TINY if not a.startswith("logger=")]
    proc = run_train([*args, f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert len([l for l in out.splitlines() if "W&B: no credentials found, logging offline" in l]) == 1
    assert list((tmp_path / "wandb").glob("offline-run-*"))
