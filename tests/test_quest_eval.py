"""quest-eval (issue 12): a tiny trained run programmed into imperfect chips."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, read_results, run_train
from quest.device.chip import chip_spec
from quest.evaluate.chips import device_layers, on_chip, program_model
from quest.evaluate.cli import main
from quest.export.run import load_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    proc = run_train([*TINY, f"hydra.run.dir={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def best_checkpoint(run: Path) -> Path:
    (path,) = sorted((run / "checkpoints").glob("best-*.ckpt"))  # the weights train.py tested
    return path


def spec_of(run, **nonideal):
    device = {**OmegaConf.to_container(run.config.device, resolve=True), "nonideal": nonideal}
    return chip_spec(device, run.model.bits, 6)


def test_all_off_accuracy_equals_the_checkpoints_own_test_accuracy(tiny_run, tmp_path, capsys):
    assert main([str(best_checkpoint(tiny_run)), "--chips", "2", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "nonideal_eval.json").read_text())
    (point,) = record["points"]
    # results.json's accuracy is torchmetrics' float32: equal counts agree within 1e-6 (one image is 1/500)
    expected = read_results(tiny_run)["test_acc"]
    assert point["ideal"] and [c["test_acc"] for c in point["chips"]] == pytest.approx([expected] * 2, abs=1e-6)
    assert point["test_acc_std"] == 0 and point["extra_write_energy_fJ_mean"] == 0
    manifest_energy = point["chips"][0]["ideal_programming_energy_fJ"]
    assert point["programming_energy_fJ_mean"] == pytest.approx(manifest_energy) and manifest_energy > 0


def test_ideal_chip_weights_and_logits_are_bit_identical(tiny_run):
    run = load_run(best_checkpoint(tiny_run))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = run.model(x)
        weights = {name: layer.weight().clone() for name, layer in device_layers(run.model)}
        chip = program_model(run.model, spec_of(run), seed=0)
        with on_chip(run.model, chip, seed=0):
            for name, layer in device_layers(run.model):
                assert torch.equal(layer.weight(), weights[name])
            assert torch.equal(run.model(x), before)
        assert torch.equal(run.model(x), before)  # restored


def test_read_noise_sigma_zero_is_bit_identical_and_positive_sigma_is_seeded(tiny_run):
    run = load_run(best_checkpoint(tiny_run))
    x = torch.randn(4, 3, 32, 32)

    def logits(seed: int, sigma: float) -> torch.Tensor:
        chip = program_model(run.model, spec_of(run, read_noise={"sigma": sigma}), seed)
        with torch.no_grad(), on_chip(run.model, chip, seed):
            return run.model(x)

    with torch.no_grad():
        clean = run.model(x)
    assert torch.equal(logits(0, 0.0), clean)
    noisy = logits(0, 0.2)
    assert not torch.equal(noisy, clean) and torch.equal(logits(0, 0.2), noisy)
    assert not torch.equal(logits(1, 0.2), noisy)
    assert [l.neuron.backend for _, l in device_layers(run.model)] == ["fused"] * len(device_layers(run.model))


def test_sweep_writes_a_table_a_figure_and_charges_failed_writes(tiny_run, tmp_path, capsys):
    args = [str(best_checkpoint(tiny_run)), "--chips", "2", "--out", str(tmp_path), "--set", "write_failure.verify=true",
            "--sweep", "device.nonideal.write_failure.p_fail=0,0.5"]
    assert main(args) == 0
    record = json.loads((tmp_path / "nonideal_eval.json").read_text())
    zero, half = record["points"]
    assert record["sweep"]["key"] == "device.nonideal.write_failure.p_fail" and [zero["value"], half["value"]] == [0, 0.5]
    assert zero["extra_write_energy_fJ_mean"] == 0 and half["extra_write_energy_fJ_mean"] > 0
    # write-verify at p_fail 0.5 (limit 10): about two attempts per transition
    chip = half["chips"][0]
    assert 1.8 < chip["write_attempts"] / chip["transitions"] < 2.2
    assert half["nonideal"]["write_failure"] == {"p_fail": 0.5, "verify": True, "max_attempts": 10, "per_transition": []}
    table = (tmp_path / "nonideal_sweep.md").read_text()
    assert "| 0.5 |" in table and table.count("\n") == 4
    assert (tmp_path / "nonideal_sweep.png").stat().st_size > 1000


@pytest.mark.parametrize("setting, message", [
    ("programming_noise.sigma=-1", "nonideal.programming_noise.sigma: must be >= 0, got -1"),
    ("stuck_at.fraction", "expected KEY=VALUE"),
    ("sigma=0.1", "KEY is <model>.<field>"),
])
def test_bad_settings_are_one_line_before_any_chip(tiny_run, tmp_path, capsys, setting, message):
    assert main([str(tiny_run), "--set", setting, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "nonideal_eval.json").exists()
