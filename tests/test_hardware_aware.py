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


def chip_for(nonideal: dict, out_channels: int = 64, seed: int = 0, **redraw: str) -> tuple[TrainingChip, SpikingConv]:
    torch.manual_seed(0)
    layer = SpikingConv(16, out_channels, NEURONS["if_hard"](), bits=2)
    mapping = DeviceMapping.build(DeviceCard.from_config({**CARD, "nonideal": nonideal}), 2, 1.0, PATTERN)
    return TrainingChip(mapping, PATTERN, [("conv", layer)], seed, **redraw), layer


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
    # every write stops at its first hop: -1 -> +1 is c -> a -> b (c -> a 5.8 fJ), +1 -> -1 is b -> c
    # (5.8 fJ), 0 -> +1 is a -> b (5.1 fJ); the 4 attempts of the first hop are all it costs
    first_hop = {-1: 5.8, 1: 5.8, 0: 5.1}
    expected = sum(4 * first_hop[int(i)] for i in before.flatten().tolist())
    assert writes.failed_energy_fJ.sum().item() == pytest.approx(expected)
    assert torch.equal(writes.energy_fJ, writes.failed_energy_fJ) and not writes.off_level_energy_fJ.any()


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_write_verify_mean_attempts_is_hops_over_one_minus_p_fail(p):
    chip, layer = chip_for({"write_failure": {"p_fail": p, "verify": True, "max_attempts": 1000}}, out_channels=512)
    before, want = chip.state["conv"].clone(), requested_change(layer)
    writes = chip.write("conv", 0, 1, want)
    n = writes.moves  # 73,728 cells; the std of the mean is below 1%
    assert n == layer.conv.weight.numel() and writes.failed_moves == 0
    # each hop takes 1 / (1 - p) attempts on average; the write c -> a -> b (level -1 -> +1) has two hops
    hops = torch.where((before == 2) & (chip.state["conv"] == 1), 2, 1)
    assert int(chip.spec.next_state[2, 1]) == 0 and int(chip.spec.next_state[0, 1]) == 1
    expected = (hops.double() / (1 - p)).mean().item()
    assert writes.attempts / n == pytest.approx(expected, rel=0.02)
    assert torch.equal(writes.after, want)


def test_a_failed_hop_ends_the_write_where_it_got_and_the_forward_pass_uses_it():
    chip, layer = chip_for({"write_failure": {"p_fail": 0.5}}, out_channels=256)  # no verify: one attempt
    want = requested_change(layer)
    writes = chip.write("conv", 0, 1, want)
    failed = writes.after != want
    assert writes.failed_moves == int(failed.sum())
    # one-hop writes stay where they were; the two-hop c -> a -> b (-1 -> +1) stays in c (first hop
    # failed, p 0.5) or stops in a (level 0: the second failed, p 0.25)
    halfway = (writes.before == -1) & (writes.after == 0)
    assert torch.equal(failed, (writes.after == writes.before) | halfway)
    two_hop = writes.before == -1
    assert halfway[two_hop].float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert (writes.after == writes.before)[two_hop].float().mean().item() == pytest.approx(0.5, abs=0.02)
    # a halfway cell paid c -> a (5.8 fJ) and its one failed attempt at a -> b (5.1 fJ)
    assert torch.allclose(writes.energy_fJ[halfway], torch.tensor(5.8 + 5.1, dtype=torch.float64))
    assert torch.allclose(writes.failed_energy_fJ[halfway], torch.tensor(5.1, dtype=torch.float64))
    assert torch.equal(chip.weight_levels("conv", 0, 2), writes.after.float())
    again = chip.write("conv", 0, 2, want)  # the requested level did not change: nothing is written
    assert again.moves == 0 and torch.equal(again.after, writes.after)


# -- the write rule: one function for quest-eval and training ----------------------------------------
def chain_card(nonideal: dict, states: tuple[str, ...], transitions: list[tuple[str, str, float]]) -> dict:
    """A card of `states` (initial the first) with only the listed direct transitions (fJ)."""
    return {"name": "chain", "initial_state": states[0], "states": [{"name": s, "read_energy_fJ": 1.0} for s in states],
            "transitions": [{"from": u, "to": v, "energy_fJ": e} for u, v, e in transitions], "nonideal": nonideal}


def chain_chip(raw: dict, levels: list[str], cells: int) -> tuple[TrainingChip, "ChipSpec", int]:
    """A training chip of one layer of `cells` cells on card `raw`, levels -1, 0, +1 in states `levels`
    (its pattern), every cell in the initial state (level -1) and asked for -1."""
    from quest.device.chip import ChipSpec
    from quest.device.patterns import pattern_number
    from quest.export.device import cell_mapping

    card = DeviceCard.from_config(raw)
    pattern = pattern_number(card, levels)
    layer = SpikingConv(cells, 1, NEURONS["if_hard"](), bits=2)  # weights [1, cells, 3, 3]; replaced below
    chip = TrainingChip(DeviceMapping.build(card, 2, 1.0, pattern), pattern, [("conv", layer)], seed=0)
    chip.state["conv"] = torch.zeros(cells, dtype=torch.long)
    chip.requested["conv"] = torch.full((cells,), -1, dtype=torch.int8)
    return chip, ChipSpec.build(card, cell_mapping(card, 2, pattern)), pattern


def test_a_write_stopped_by_a_failing_hop_ends_in_the_intermediate_state_in_eval_and_training_alike():
    # a -> b -> c, p_fail only on b -> c (every attempt fails; write-verify tries it 3 times)
    raw = chain_card({"write_failure": {"per_transition": [{"from": "b", "to": "c", "p_fail": 1.0}], "verify": True,
                                        "max_attempts": 3}},
                     ("a", "b", "c"), [("a", "b", 2.0), ("b", "c", 3.0), ("c", "a", 1.0), ("b", "a", 4.0)])
    chip, spec, _ = chain_chip(raw, ["a", "b", "c"], 5)
    from quest.device.chip import program_layer

    programmed = program_layer(np.ones(5, dtype=np.int64), spec, seed=0)  # level +1 -> c, from a
    assert programmed.states.tolist() == [1] * 5 and programmed.effective_levels.tolist() == [0.0] * 5  # in b
    assert programmed.energy_fJ == pytest.approx(5 * (2.0 + 3 * 3.0))  # a -> b once, b -> c three times
    assert (programmed.attempts, programmed.transitions, programmed.failed_transitions) == (20, 10, 5)
    writes = chip.write("conv", 0, 1, torch.ones(5, dtype=torch.int8))
    assert chip.state["conv"].tolist() == [1] * 5 and writes.after.tolist() == [0] * 5
    assert writes.energy_fJ.tolist() == [2.0 + 9.0] * 5 and writes.failed_energy_fJ.tolist() == [9.0] * 5
    assert (writes.attempts, writes.moves, writes.failed_moves) == (20, 5, 5)
    # the monitor counts -1 -> 0 and charges C[a][b] = 2: with the failed attempts, every attempt's energy
    assert not writes.off_level_energy_fJ.any()


# a -> b -> x -> c, x holds no level (levels -1, 0, +1 in a, b, c); x -> c always fails
X_CHAIN = chain_card({"write_failure": {"per_transition": [{"from": "x", "to": "c", "p_fail": 1.0}]}}, ("a", "b", "x", "c"),
                     [("a", "b", 1.0), ("b", "x", 2.0), ("x", "c", 4.0), ("x", "a", 8.0), ("c", "a", 16.0), ("b", "a", 32.0)])


def test_a_cell_stopping_in_a_state_without_a_level_records_what_the_level_count_misses():
    raw = X_CHAIN
    chip, spec, _ = chain_chip(raw, ["a", "b", "c"], 4)
    writes = chip.write("conv", 0, 1, torch.ones(4, dtype=torch.int8))  # -1 -> +1: a -> b -> x, then x -> c fails
    assert chip.state["conv"].tolist() == [2] * 4 and writes.after.tolist() == [0] * 4  # x reads as level 0
    assert writes.energy_fJ.tolist() == [1.0 + 2.0 + 4.0] * 4 and writes.failed_energy_fJ.tolist() == [4.0] * 4
    # the level count charges -1 -> 0 at C[a][b] = 1; the successful hops cost C[a][x] = 3
    assert writes.off_level_energy_fJ.tolist() == [2.0] * 4
    back = chip.write("conv", 0, 2, torch.full((4,), -1, dtype=torch.int8))  # x -> a direct, 8 fJ
    assert chip.state["conv"].tolist() == [0] * 4 and back.energy_fJ.tolist() == [8.0] * 4
    # counted 0 -> -1 at C[b][a] = 10 (b -> x -> a): 2 fJ too much
    assert spec.cost_fJ[1, 0] == 10.0 and back.off_level_energy_fJ.tolist() == [-2.0] * 4


def test_the_monitor_charges_every_attempt_of_a_write_that_stopped_without_a_level(tmp_path):
    from types import SimpleNamespace

    from quest.device.hardware_aware import HardwareAwareTraining
    from quest.device.patterns import pattern_number
    from quest.energy.record import headline
    from quest.monitors.transitions import TransitionMonitor

    card = DeviceCard.from_config(X_CHAIN)
    pattern = pattern_number(card, ["a", "b", "c"])
    levels = {"now": torch.full((4,), -1, dtype=torch.int8)}  # 4 cells in a
    layer = SimpleNamespace(quantized=True, quantizer=SimpleNamespace(q_max=1), conv=SimpleNamespace(weight=torch.zeros(4)),
                            weight_levels=lambda: levels["now"])
    module = SimpleNamespace(net=SimpleNamespace(device_layers=lambda: [("conv", layer)]), log_dict=lambda *a, **k: None)
    aware = HardwareAwareTraining(DeviceMapping.build(card, 2, 1.0, pattern), enabled=True)
    monitor = TransitionMonitor(DeviceMapping.build(card, 2, 1.0, pattern), windows={"early": [0, 1], "late": [5, 6]})
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[], callbacks=[aware, monitor],
                              current_epoch=0, global_step=1, sanity_checking=False)
    monitor.on_fit_start(trainer, module)
    monitor.on_train_epoch_start(trainer, module)
    levels["now"] = torch.ones(4, dtype=torch.int8)  # -1 -> +1: a -> b -> x, x -> c fails; x reads 0
    monitor.on_train_batch_end(trainer, module, None, (torch.zeros(2, 1), torch.zeros(2)), 0)
    monitor.on_train_epoch_end(trainer, module)
    record = json.loads((tmp_path / "energy.json").read_text())
    epoch = record["write"]["epochs"][0]
    rep = epoch["layers"]["conv"]
    assert rep["transition_counts"] == [[0, 4, 0], [0, 0, 0], [0, 0, 0]]  # -1 -> 0, four times
    f = rep["failed_writes"]
    assert (f["write_attempts"], f["moves"], f["failed_moves"]) == (12, 4, 4)
    assert f["failed_energy_fJ"] == 16.0 and f["off_level_energy_fJ"] == 8.0  # 4 x (x -> c), 4 x (b -> x)
    # per batch: the count's charge 4 x C[a][b] = 4, plus both: every attempt, 4 x (1 + 2 + 4) = 28
    level_count = rep["write_energy"][str(pattern)]["per_batch_fJ"]
    assert level_count == 4.0 and level_count + f["per_batch_fJ"] + f["off_level_per_batch_fJ"] == pytest.approx(28.0)
    assert epoch["nonideal"]["off_level_write_energy_per_sample_fJ"] == pytest.approx(8.0 / 2)
    assert headline(record, pattern)["write_energy_per_sample_fJ"] == pytest.approx(28.0 / 2)
    # the window holding the batch records the same; a window without it, nothing failed
    windows = record["write"]["windows"]
    assert windows["early"]["layers"]["conv"]["failed_writes"] == f and windows["early"]["nonideal"] == epoch["nonideal"]
    assert "late" not in windows


def test_eval_and_training_write_the_same_cells_the_same_way_from_the_same_draws(monkeypatch):
    import quest.device.hardware_aware as ha
    from quest.device.chip import _rng, chip_spec, program_layer

    raw = {**CARD, "nonideal": {"write_failure": {"p_fail": 0.3, "verify": True, "max_attempts": 2},
                                "stuck_at": {"fraction": 0.1}}}
    chip, layer = chip_for(raw["nonideal"], seed=9)
    levels = layer.weight_levels()
    chip.state["conv"] = torch.zeros_like(chip.state["conv"])  # every cell in a (level 0, stuck cells too)
    chip.requested["conv"] = torch.zeros_like(levels)
    monkeypatch.setattr(ha, "_rng", lambda seed, layer, model, *step: _rng(seed, layer, model))  # eval's stream
    writes = chip.write("conv", 0, 1, levels)
    programmed = program_layer(levels.numpy(), chip_spec(raw, 2, PATTERN), seed=9, layer=0)
    assert np.array_equal(chip.state["conv"].numpy(), programmed.states) and programmed.stuck_cells > 0
    assert writes.attempts == programmed.attempts and writes.failed_moves == programmed.failed_transitions > 0
    assert writes.energy_fJ.sum().item() == pytest.approx(programmed.energy_fJ, rel=1e-12)


# -- redraw: the chip of the run, or a new chip every step ----------------------------------------------
STUCK_AND_VARIATION = {"stuck_at": {"fraction": 0.3}, "variation": {"sigma": 0.1}}


def test_redraw_step_draws_a_new_chip_every_step_and_the_same_chip_for_the_same_step_and_seed():
    chip, layer = chip_for(STUCK_AND_VARIATION, seed=4, redraw="step")
    again, _ = chip_for(STUCK_AND_VARIATION, seed=4, redraw="step")
    other_seed, _ = chip_for(STUCK_AND_VARIATION, seed=5, redraw="step")
    held = layer.weight_levels()
    at3 = chip.weight_levels("conv", 0, 3)
    stuck3, offsets3 = chip.stuck["conv"].clone(), chip.offsets["conv"].clone()
    at4 = chip.weight_levels("conv", 0, 4)
    assert not torch.equal(stuck3, chip.stuck["conv"]) and not torch.equal(offsets3, chip.offsets["conv"])
    assert not torch.equal(at3, at4)
    assert torch.equal(again.weight_levels("conv", 0, 3), at3) and torch.equal(again.stuck["conv"], stuck3)
    assert not torch.equal(other_seed.weight_levels("conv", 0, 3), at3)
    assert stuck3.float().mean().item() == pytest.approx(0.3, abs=0.02)
    # a stuck cell reads the stuck state (a: level 0) for the step only; the states are kept
    assert torch.all(at3[stuck3] == 0) and torch.equal(chip.levels("conv"), held)
    ratio = at3[~stuck3 & (held != 0)] / held[~stuck3 & (held != 0)].float()
    assert ratio.std().item() == pytest.approx(0.1, rel=0.1)


def test_redraw_step_writes_fail_for_the_stuck_cells_of_the_step_whose_forward_pass_preceded():
    chip, layer = chip_for({"stuck_at": {"fraction": 0.4}}, redraw="step")
    chip.weight_levels("conv", 0, 7)  # the forward pass of step 7 draws its chip
    stuck = chip.stuck["conv"].clone()
    want = requested_change(layer)
    writes = chip.write("conv", 0, 8, want)  # after the optimizer step: global_step 8
    assert torch.equal(writes.after != want, stuck) and torch.equal(writes.after[stuck], writes.before[stuck])
    assert writes.failed_moves == int(stuck.sum()) and writes.moves == want.numel()
    chip.weight_levels("conv", 0, 8)
    assert not torch.equal(chip.stuck["conv"], stuck)  # the next step: another chip, the same cell states
    assert torch.equal(chip.levels("conv"), writes.after)


def test_redraw_run_is_the_default_chip_and_records_what_it_recorded_before():
    from quest.device.hardware_aware import HardwareAwareTraining

    default, _ = chip_for(STUCK_AND_VARIATION, seed=2)
    run, _ = chip_for(STUCK_AND_VARIATION, seed=2, redraw="run")
    assert default.redraw == "run" and torch.equal(default.weight_levels("conv", 0, 3), run.weight_levels("conv", 0, 3))
    assert torch.equal(default.weight_levels("conv", 0, 3), default.weight_levels("conv", 0, 4))  # one chip per run
    mapping = DeviceMapping.build(DeviceCard.from_config({**CARD, "nonideal": STUCK_AND_VARIATION}), 2, 1.0, PATTERN)
    keys = ["hardware_aware_training", "note", "pattern", "chip_seed", "noisy_validation", "nonideal"]
    assert list(HardwareAwareTraining(mapping, enabled=True).summary()) == keys  # energy.json as before the knob
    assert HardwareAwareTraining(mapping, enabled=True, redraw="step").summary()["redraw"] == "step"


@pytest.mark.parametrize("value", ["epoch", "Step", None])
def test_redraw_refuses_other_values_in_one_line(value):
    from quest.device.hardware_aware import HardwareAwareTraining

    mapping = DeviceMapping.build(DeviceCard.from_config(CARD), 2, 1.0, PATTERN)
    with pytest.raises(ValueError) as err:
        HardwareAwareTraining(mapping, redraw=value)
    assert str(err.value) == f"callbacks.hardware_aware.redraw={value!r}: allowed run, step"


def test_the_report_says_a_run_trained_on_a_new_chip_every_step():
    from types import SimpleNamespace

    from quest.report.nonideal import training_label

    block = {"hardware_aware_training": True, "nonideal": {"stuck_at": {"fraction": 0.1, "state": None}}}
    job = SimpleNamespace(energy={"write": {"nonideal": block}})
    assert training_label(job) == "noise-aware (stuck_at.fraction=0.1)"
    job.energy["write"]["nonideal"] = {**block, "redraw": "step"}
    assert training_label(job) == "noise-aware (stuck_at.fraction=0.1, a new chip every step)"


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


@pytest.mark.slow
def test_redraw_run_is_the_default_run_bit_for_bit_and_step_trains_on_a_new_chip_each_step(tmp_path):
    chip = ("callbacks.hardware_aware.enabled=true", "device.nonideal.stuck_at.fraction=0.2",
            "device.nonideal.variation.sigma=0.1", "device.nonideal.write_failure.p_fail=0.1")
    default = train(tmp_path / "default", *chip)
    run = train(tmp_path / "run", *chip, "callbacks.hardware_aware.redraw=run")
    step = train(tmp_path / "step", *chip, "callbacks.hardware_aware.redraw=step")
    assert (default / "energy.json").read_bytes() == (run / "energy.json").read_bytes()
    a, b, c = read_results(default), read_results(run), read_results(step)
    for key in ("test_acc", "test_loss", "best_val_acc", "energy"):
        assert a[key] == b[key], key
    summary = json.loads((step / "energy.json").read_text())["write"]["nonideal"]
    assert summary["redraw"] == "step" and "redraw" not in json.loads((run / "energy.json").read_text())["write"]["nonideal"]
    assert c["energy"]["failed_write_energy_per_sample_fJ"] != a["energy"]["failed_write_energy_per_sample_fJ"]


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
