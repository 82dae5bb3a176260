"""Hardware-aware training (issue 12, training side; opt-in, our addition): the training chip's
forward pass, its writes with failures, and real train.py runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, TINY, read_results, run_train
from quest.device.card import DeviceCard
from quest.device.hardware_aware import TrainingChip
from quest.device.mapping import DeviceMapping
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS

CARD = yaml.safe_load((ROOT / "quest" / "conf" / "device" / "sk_mtj_3state.yaml").read_text())
PATTERN = 6  # levels -1, 0, +1 -> states c, a, b: the reset state a holds level 0


def chip_for(nonideal: dict, out_channels: int = 64, seed: int = 0) -> tuple[TrainingChip, SpikingConv]:
    torch.manual_seed(0)
    layer = SpikingConv(16, out_channels, NEURONS["if_hard"](), bits=2)
    mapping = DeviceMapping.build(DeviceCard.from_config({**CARD, "nonideal": nonideal}), 2, 1.0, PATTERN)
    return TrainingChip(mapping, PATTERN, [("conv", layer)], seed), layer


def test_hardware_aware_training_is_opt_in_and_says_it_is_our_addition(compose_cfg):
    cfg = compose_cfg(TINY)
    node = cfg.callbacks.hardware_aware
    assert node.enabled is False and node.noisy_validation is False
    text = (ROOT / "quest" / "conf" / "callbacks" / "default.yaml").read_text()
    assert "OUR ADDITION, not in the QUEST paper (off by default)" in text


def test_a_chip_of_zero_non_idealities_computes_the_quantized_weights_bit_for_bit():
    chip, layer = chip_for({"programming_noise": {"sigma": 0.0}})
    levels = chip.weight_levels("conv", 0, step=3)
    assert torch.equal(levels, layer.weight_levels().float())
    assert torch.equal(chip.levels("conv"), layer.weight_levels())


def test_programming_noise_is_resampled_every_step_and_straight_through():
    chip, layer = chip_for({"programming_noise": {"sigma": 0.1}})
    a, b = chip.weight_levels("conv", 0, 0), chip.weight_levels("conv", 0, 1)
    assert not torch.equal(a, b) and torch.equal(a, chip.weight_levels("conv", 0, 0))  # per step, seeded
    nominal = layer.weight_levels().float()
    ratio = a[nominal != 0] / nominal[nominal != 0]
    assert ratio.std().item() == pytest.approx(0.1, rel=0.1) and torch.all(a[nominal == 0] == 0)
    # the value is the noisy weight, the gradient that of q(w): the noise multiplies the quantized weight
    from quest.device.hardware_aware import HardwareAwareTraining

    cb = HardwareAwareTraining(chip_mapping := DeviceMapping.build(
        DeviceCard.from_config({**CARD, "nonideal": {"programming_noise": {"sigma": 0.1}}}), 2, 1.0, PATTERN), enabled=True)
    cb.chip, cb.layers = chip, [("conv", layer)]
    cb._install(0)
    w = layer.weight()
    scale = layer.quantizer.scale() / layer.quantizer.q_max
    assert torch.allclose(w, a * scale)
    (w * torch.arange(w.numel()).view_as(w)).sum().backward()
    noisy_grad = layer.conv.weight.grad.clone()
    cb._remove()
    layer.conv.weight.grad = None
    (layer.weight() * torch.arange(w.numel()).view_as(w)).sum().backward()
    assert torch.equal(noisy_grad, layer.conv.weight.grad) and chip_mapping.selection == PATTERN


def test_variation_and_stuck_cells_are_the_chip_quest_eval_programs_with_the_same_seed():
    from quest.device.chip import ChipSpec, program_layer
    from quest.export.device import cell_mapping

    raw = {"variation": {"sigma": 0.1}, "stuck_at": {"fraction": 0.2}}
    chip, layer = chip_for(raw, seed=5)
    card = DeviceCard.from_config({**CARD, "nonideal": raw})
    programmed = program_layer(layer.weight_levels().numpy(), ChipSpec.build(card, cell_mapping(card, 2, PATTERN)), 5, 0)
    assert np.array_equal(chip.state["conv"].numpy(), programmed.states)
    assert np.allclose(chip.weight_levels("conv", 0, 7).numpy(), programmed.effective_levels, atol=1e-6)


def test_stuck_fraction_one_holds_every_cell_at_the_reset_level():
    chip, _ = chip_for({"stuck_at": {"fraction": 1.0}})
    assert torch.all(chip.weight_levels("conv", 0, 0) == 0) and torch.all(chip.levels("conv") == 0)


def requested_change(layer: SpikingConv) -> torch.Tensor:
    """Levels every cell moves to: -1 <-> +1 and 0 -> +1 (every requested level changes)."""
    levels = layer.weight_levels()
    return torch.where(levels == 0, torch.ones_like(levels), -levels)


def test_p_fail_one_makes_no_transition_happen_and_charges_every_attempt():
    chip, layer = chip_for({"write_failure": {"p_fail": 1.0, "verify": True, "max_attempts": 4}})
    before = chip.levels("conv").clone()
    writes = chip.write("conv", 0, 1, requested_change(layer))
    assert torch.equal(writes.after, before) and torch.equal(chip.levels("conv"), before)
    assert writes.failed_moves == writes.moves == before.numel() and writes.attempts == 4 * writes.moves
    cost = DeviceMapping.build(DeviceCard.from_config(CARD), 2, 1.0, PATTERN).cost_fJ  # states a, b, c
    state = {-1: 2, 0: 0, 1: 1}
    expected = sum(4 * cost[state[int(i)]][state[int(j)]]
                   for i, j in zip(before.flatten().tolist(), requested_change(layer).flatten().tolist()))
    assert writes.failed_energy_fJ.sum().item() == pytest.approx(expected)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_write_verify_mean_attempts_is_one_over_one_minus_p_fail(p):
    chip, layer = chip_for({"write_failure": {"p_fail": p, "verify": True, "max_attempts": 1000}}, out_channels=512)
    before, want = chip.state["conv"].clone(), requested_change(layer)
    writes = chip.write("conv", 0, 1, want)
    n = writes.moves  # 73,728 cells; the std of the mean is below 1%
    assert n == layer.conv.weight.numel() and writes.failed_moves == 0
    # one hop fails with p; the two-hop write c -> a -> b (level -1 -> +1) with 1 - (1 - p)^2
    hops = torch.where((before == 2) & (chip.state["conv"] == 1), 2, 1)
    expected = (1 / (1 - p) ** hops.double()).mean().item()
    assert chip.p_move[2, 1] == pytest.approx(1 - (1 - p) ** 2) and chip.p_move[0, 1] == pytest.approx(p)
    assert writes.attempts / n == pytest.approx(expected, rel=0.02)
    assert torch.equal(writes.after, want)


def test_a_failed_write_keeps_the_cell_in_its_state_and_the_forward_pass_uses_it():
    chip, layer = chip_for({"write_failure": {"p_fail": 0.5}})  # no verify: one attempt
    want = requested_change(layer)
    writes = chip.write("conv", 0, 1, want)
    failed = writes.after != want  # one hop fails with 0.5, the two-hop c -> a -> b with 0.75
    assert 0.45 < failed.float().mean().item() < 0.75 and writes.failed_moves == int(failed.sum())
    assert torch.equal(writes.after[failed], writes.before[failed])
    assert torch.equal(chip.weight_levels("conv", 0, 2), writes.after.float())
    again = chip.write("conv", 0, 2, want)  # the requested level did not change: nothing is written
    assert again.moves == 0 and torch.equal(again.after, writes.after)


# -- real train.py runs ------------------------------------------------------------------------------
def train(out: Path, *overrides: str) -> Path:
    proc = run_train([*TINY, "pattern=6", f"hydra.run.dir={out}", *overrides])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_enabled_on_an_ideal_card_is_the_plain_run_bit_for_bit(tmp_path):
    plain = train(tmp_path / "plain")
    aware = train(tmp_path / "aware", "callbacks.hardware_aware.enabled=true")
    a, b = read_results(plain), read_results(aware)
    for key in ("test_acc", "test_loss", "best_val_acc", "energy"):
        assert a[key] == b[key], key
    assert (plain / "energy.json").read_bytes() == (aware / "energy.json").read_bytes()


def test_p_fail_one_in_training_moves_no_cell_and_charges_the_attempts(tmp_path):
    run = train(tmp_path / "run", "callbacks.hardware_aware.enabled=true", "device.nonideal.write_failure.p_fail=1.0",
                "device.nonideal.write_failure.verify=true", "device.nonideal.write_failure.max_attempts=3",
                "device.nonideal.programming_noise.sigma=0.1", "trainer.max_epochs=2")
    record = json.loads((run / "energy.json").read_text())
    write = record["write"]
    assert write["nonideal"]["hardware_aware_training"] and write["nonideal"]["pattern"] == 6
    assert write["nonideal"]["nonideal"]["write_failure"]["p_fail"] == 1.0
    moves = 0
    for epoch in write["epochs"]:
        for layer in epoch["layers"].values():
            counts = np.array(layer["transition_counts"])
            assert counts.sum() > 0 and np.count_nonzero(counts - np.diag(np.diag(counts))) == 0  # no transition
            f = layer["failed_writes"]
            assert f["failed_moves"] == f["moves"] and f["write_attempts"] == 3 * f["moves"]
            assert (f["failed_energy_fJ"] > 0) == (f["moves"] > 0)
            moves += f["moves"]
            # nothing succeeded: all write energy is the failed attempts'
            assert all(e["per_sample_fJ"] == 0 for e in layer["write_energy"].values())
    assert moves > 0
    energy = read_results(run)["energy"]
    failed = write["epochs"][-1]["nonideal"]["failed_write_energy_per_sample_fJ"]
    assert failed > 0 and energy["failed_write_energy_per_sample_fJ"] == failed
    assert energy["write_energy_per_sample_fJ"] == pytest.approx(failed)


@pytest.mark.parametrize("noisy", [False, True])
def test_validation_during_training_is_noise_free_unless_configured(noisy):
    from types import SimpleNamespace

    from quest.device.hardware_aware import HardwareAwareTraining

    chip, layer = chip_for({"programming_noise": {"sigma": 0.1}})
    cb = HardwareAwareTraining(DeviceMapping.build(
        DeviceCard.from_config({**CARD, "nonideal": {"programming_noise": {"sigma": 0.1}}}), 2, 1.0, PATTERN),
        enabled=True, noisy_validation=noisy)
    cb.chip, cb.layers = chip, [("conv", layer)]
    trainer = SimpleNamespace(sanity_checking=False, global_step=5)
    cb.on_validation_epoch_start(trainer, None)
    noisy_weight = chip.weight_levels("conv", 0, 5) * (layer.quantizer.scale() / layer.quantizer.q_max)
    expected = noisy_weight if noisy else layer.quantizer(layer.conv.weight)
    assert torch.allclose(layer.weight(), expected)
    cb.on_validation_epoch_end(trainer, None)
    assert torch.equal(layer.weight(), layer.quantizer(layer.conv.weight))  # restored after validation


def test_the_chip_state_survives_a_checkpoint():
    chip, layer = chip_for({"write_failure": {"p_fail": 0.5}})
    chip.write("conv", 0, 1, requested_change(layer))
    saved = chip.state_dict()
    fresh, _ = chip_for({"write_failure": {"p_fail": 0.5}})
    assert not torch.equal(fresh.state["conv"], chip.state["conv"])
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.state["conv"], chip.state["conv"]) and torch.equal(fresh.requested["conv"], chip.requested["conv"])
