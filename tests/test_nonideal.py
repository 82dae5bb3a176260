"""Device non-idealities (issue 12): the card's `nonideal` block and programming a chip."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from conftest import CONF
from quest.device.card import DeviceCard, DeviceCardError
from quest.device.chip import chip_spec, program_layer
from quest.export.device import cell_mapping
from quest.export.programming_map import programming_energy_fJ

CARD = yaml.safe_load((CONF / "device" / "sk_mtj_3state.yaml").read_text())
LEVELS = np.random.default_rng(0).integers(-1, 2, size=(32, 16, 3, 3))  # 2-bit levels
PATTERN = 6  # -1 -> c, 0 -> a, +1 -> b


def card_with(**blocks) -> dict:
    raw = copy.deepcopy(CARD)
    for model, values in blocks.items():
        raw["nonideal"][model].update(values)
    return raw


def program(raw: dict, levels=LEVELS, seed: int = 0, pattern: int = PATTERN, bits: int = 2):
    return program_layer(levels, chip_spec(raw, bits, pattern), seed, layer=1)


def test_every_shipped_card_declares_every_model_off(compose_cfg):
    for name in ("sk_mtj_3state", "sk_mtj_7state", "rram_hfox_4level", "pcm_16level"):
        cfg = compose_cfg([f"device={name}"])
        assert DeviceCard.from_config(cfg.device).nonideal.ideal, name
    cfg = compose_cfg(["device.nonideal.programming_noise.sigma=0.02", "device.nonideal.write_failure.verify=true"])
    ni = DeviceCard.from_config(cfg.device).nonideal
    assert ni.programming_noise.sigma == 0.02 and ni.write_failure.verify and not ni.ideal


@pytest.mark.parametrize("block, message", [
    ({"programming_noise": {"sigma": -0.1}}, "nonideal.programming_noise.sigma: must be >= 0, got -0.1"),
    ({"read_noise": {"per_state": {"z": 0.1}}}, "nonideal.read_noise.per_state.z: unknown state; allowed: a, b, c"),
    ({"write_failure": {"p_fail": 1.5}}, "nonideal.write_failure.p_fail: must be in [0, 1.0], got 1.5"),
    ({"write_failure": {"per_transition": [{"from": "c", "to": "b", "p_fail": 0.1}]}},
     "per_transition[0]: c->b is not a direct transition of the card"),
    ({"write_failure": {"max_attempts": 0}}, "nonideal.write_failure.max_attempts: must be a positive integer, got 0"),
    ({"stuck_at": {"state": "q"}}, "nonideal.stuck_at.state: unknown state 'q'"),
    ({"stuck_at": {"fractoin": 0.1}}, "nonideal.stuck_at.fractoin: unknown key; allowed: fraction, state"),
])
def test_bad_blocks_are_refused_in_one_line_at_load(block, message):
    raw = copy.deepcopy(CARD)
    for model, values in block.items():
        raw["nonideal"][model].update(values)
    with pytest.raises(DeviceCardError) as err:
        DeviceCard.from_config(raw)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("device card 'sk_mtj_3state': nonideal.")


def test_everything_off_is_todays_weights_and_programming_energy():
    layer = program(CARD)
    assert np.array_equal(layer.effective_levels, LEVELS) and layer.effective_levels.dtype == np.float32
    cells = cell_mapping(CARD, 2, PATTERN)
    assert np.array_equal(layer.states, cells.states_of(LEVELS))
    expected = programming_energy_fJ(cells.states_of(LEVELS), cells.cost_fJ, cells.initial_state)
    assert layer.energy_fJ == pytest.approx(expected) and layer.wrong_cells == 0 and layer.failed_transitions == 0
    assert not layer.read_sigma.any()


def test_a_card_without_the_block_is_ideal():
    raw = {k: v for k, v in CARD.items() if k != "nonideal"}
    assert DeviceCard.from_config(raw).nonideal.ideal
    assert np.array_equal(program(raw).effective_levels, LEVELS)


def test_stuck_at_fraction_one_at_the_reset_state_gives_the_reset_level_everywhere():
    layer = program(card_with(stuck_at={"fraction": 1.0}))
    assert np.all(layer.effective_levels == 0)  # pattern 6: the reset state a holds level 0
    assert np.all(layer.states == 0) and layer.stuck_cells == LEVELS.size
    # pattern 1 (-1 -> a, 0 -> b, +1 -> c): the reset state a holds -1; the named state c holds +1
    assert np.all(program(card_with(stuck_at={"fraction": 1.0}), pattern=1).effective_levels == -1)
    assert np.all(program(card_with(stuck_at={"fraction": 1.0, "state": "c"}), pattern=1).effective_levels == 1)


def test_stuck_fraction_is_drawn_per_chip():
    raw = card_with(stuck_at={"fraction": 0.25})
    a, b = program(raw, seed=1), program(raw, seed=2)
    assert abs(a.stuck_cells / LEVELS.size - 0.25) < 0.03
    assert not np.array_equal(a.states, b.states)


def test_p_fail_one_makes_no_transition_and_charges_the_attempts():
    cells = cell_mapping(CARD, 2, PATTERN)
    written = cells.states_of(LEVELS) != cells.initial_state  # cells whose target is not the reset state
    first_hop_fJ = np.where(LEVELS == -1, 5.8, 5.1)  # a -> c (level -1) and a -> b (level +1)
    layer = program(card_with(write_failure={"p_fail": 1.0}))
    assert np.all(layer.states == cells.initial_state) and np.all(layer.effective_levels == 0)
    assert layer.attempts == written.sum() == layer.failed_transitions
    assert layer.energy_fJ == pytest.approx(first_hop_fJ[written].sum())
    verified = program(card_with(write_failure={"p_fail": 1.0, "verify": True, "max_attempts": 7}))
    assert verified.attempts == 7 * written.sum()
    assert verified.energy_fJ == pytest.approx(7 * first_hop_fJ[written].sum())


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_write_verify_mean_attempts_per_transition_is_one_over_one_minus_p(p):
    levels = np.ones(200_000, dtype=np.int64)  # every cell a -> b, one direct transition
    layer = program(card_with(write_failure={"p_fail": p, "verify": True, "max_attempts": 10_000}), levels=levels)
    mean = layer.attempts / layer.transitions
    # attempts ~ Geometric(1 - p): sd = sqrt(p) / (1 - p); the mean of 2e5 within 5 standard errors
    assert abs(mean - 1 / (1 - p)) < 5 * np.sqrt(p) / (1 - p) / np.sqrt(levels.size)
    assert layer.wrong_cells == 0
    assert layer.energy_fJ == pytest.approx(5.1 * layer.attempts)


def test_without_verify_a_failed_write_leaves_the_cell_where_it_was():
    layer = program(card_with(write_failure={"p_fail": 0.3}), levels=np.ones(100_000, dtype=np.int64))
    assert abs(layer.wrong_cells / 100_000 - 0.3) < 0.01 and layer.attempts == 100_000
    assert np.all(layer.effective_levels[layer.states == 0] == 0)


def test_per_transition_p_fail_only_hits_its_transition():
    raw = card_with(write_failure={"per_transition": [{"from": "a", "to": "c", "p_fail": 1.0}]})
    layer = program(raw)
    assert np.all(layer.effective_levels[LEVELS == -1] == 0)  # a -> c always fails
    assert np.array_equal(layer.effective_levels[LEVELS != -1], LEVELS[LEVELS != -1])


def test_programming_noise_scales_each_cell_by_its_state_sigma():
    raw = card_with(programming_noise={"sigma": 0.0, "per_state": {"b": 0.1}})
    levels = np.ones(100_000, dtype=np.int64)  # all in b under pattern 6
    ratio = program(raw, levels=levels).effective_levels
    assert abs(ratio.mean() - 1) < 0.002 and abs(ratio.std() - 0.1) < 0.002
    assert np.all(program(raw, levels=-levels).effective_levels == -1)  # state c has sigma 0


def test_variation_is_per_cell_per_state_and_fixed_per_chip():
    raw = card_with(variation={"sigma": 0.05})
    a, b = program(raw, seed=3), program(raw, seed=3)
    assert np.array_equal(a.effective_levels, b.effective_levels)  # the same seed: the same chip
    assert not np.array_equal(a.effective_levels, program(raw, seed=4).effective_levels)
    ratio = a.effective_levels[LEVELS != 0] / LEVELS[LEVELS != 0]
    assert abs(ratio.std() - 0.05) < 0.005


def test_same_seed_same_chip_for_every_model_together():
    raw = card_with(programming_noise={"sigma": 0.03}, variation={"sigma": 0.02}, read_noise={"sigma": 0.01},
                    write_failure={"p_fail": 0.1, "verify": True}, stuck_at={"fraction": 0.05, "state": "b"})
    a, b = program(raw, seed=11), program(raw, seed=11)
    for field in ("effective_levels", "states", "read_sigma"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert (a.attempts, a.energy_fJ) == (b.attempts, b.energy_fJ)
    # switching programming noise off leaves the other models' draws (states, attempts) unchanged
    c = program(card_with(variation={"sigma": 0.02}, read_noise={"sigma": 0.01},
                          write_failure={"p_fail": 0.1, "verify": True}, stuck_at={"fraction": 0.05, "state": "b"}),
                seed=11)
    assert np.array_equal(a.states, c.states) and a.attempts == c.attempts


def test_a_state_holding_no_level_reads_as_zero():
    raw = yaml.safe_load((CONF / "device" / "sk_mtj_7state.yaml").read_text())
    raw["nonideal"]["stuck_at"].update(fraction=1.0)
    spec = chip_spec(raw, 2, 1)
    unused = [i for i in range(len(spec.states)) if i not in set(spec.level_state.tolist())]
    if spec.initial_state in unused:
        assert np.all(program_layer(LEVELS, spec, 0).effective_levels == 0)
    for s in unused[:1]:
        raw["nonideal"]["stuck_at"].update(state=spec.states[s])
        assert np.all(program_layer(LEVELS, chip_spec(raw, 2, 1), 0).effective_levels == 0)


def test_a_card_with_non_idealities_pickles_and_copies_whole():
    import pickle

    card = DeviceCard.from_config(card_with(write_failure={"per_transition": [{"from": "a", "to": "b", "p_fail": 0.2}]},
                                            read_noise={"per_state": {"c": 0.05}}))
    for clone in (pickle.loads(pickle.dumps(card)), copy.deepcopy(card)):
        assert clone.nonideal == card.nonideal and clone.nonideal.write_failure.p_of("a", "b") == 0.2
        assert clone.nonideal.read_noise.sigma_of("c") == 0.05 and clone.nonideal.read_noise.sigma_of("a") == 0.0


@pytest.mark.parametrize("override", ["device.nonideal.read_noise.sigma=0.05", "device.nonideal.stuck_at.fraction=0.01",
                                      "+device.nonideal.programming_noise.per_state.b=0.02"])
def test_training_with_a_non_ideality_needs_hardware_aware_training_and_a_fixed_pattern(compose_cfg, override):
    from quest.config_checks import ConfigError, check_run_inputs

    from conftest import TINY

    model = override.split(".")[2]
    with pytest.raises(ConfigError, match=rf"^device.nonideal.{model}: training applies device non-idealities only "
                                          r"with callbacks.hardware_aware.enabled=true"):
        check_run_inputs(compose_cfg([*TINY, override]))
    check_run_inputs(compose_cfg([*TINY, "device.nonideal.write_failure.verify=true"]))  # all still off: trains
    aware = [*TINY, override, "callbacks.hardware_aware.enabled=true"]
    with pytest.raises(ConfigError, match=r"pattern.selection='best'; .* set pattern=<number>"):
        check_run_inputs(compose_cfg(aware))
    check_run_inputs(compose_cfg([*aware, "pattern='6'"]))
    with pytest.raises(ConfigError, match=r"^callbacks.hardware_aware.enabled=true: precision=fp32"):
        check_run_inputs(compose_cfg([*aware, "pattern='6'", "precision=fp32"]))
