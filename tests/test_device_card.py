"""Device cards: loading, validation, physical-model conversions, RSTD costs, realizability.

Expected numbers are worked by hand in the comments, not recomputed by the code under test.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from quest.device import (
    DeviceCard,
    DeviceCardError,
    available_cards,
    check_realizable,
    cheapest_path,
    load_card,
    max_bits,
    transition_cost_matrix_fJ,
)
from quest.device.card import CONF_DIR


def minimal_config(**overrides):
    cfg = {
        "name": "toy",
        "initial_state": "a",
        "states": [{"name": "a", "read_energy_fJ": 1.0}, {"name": "b", "read_energy_fJ": 2.0},
                   {"name": "c", "read_energy_fJ": 3.0}],
        "transitions": [{"from": "a", "to": "b", "energy_fJ": 1.0},
                        {"from": "b", "to": "c", "energy_fJ": 2.0},
                        {"from": "c", "to": "a", "energy_fJ": 4.0}],
    }
    cfg.update(overrides)
    return cfg


# ------------------------------------------------------------------------------ shipped cards
def test_every_shipped_card_loads_and_is_strongly_connected():
    names = available_cards()
    assert {"sk_mtj_3state", "sk_mtj_7state"} <= set(names)
    assert len(names) >= 3  # plus one RRAM / PCM card
    for name in names:
        card = load_card(name)
        assert card.name == name
        cost = transition_cost_matrix_fJ(card)
        assert np.isfinite(cost).all() and (np.diag(cost) == 0).all()
        if card.reconstruction:
            assert card.reconstruction_note.strip()
        assert card.citation.strip()


def test_shipped_cards_load_through_omegaconf_like_hydra():
    omegaconf = pytest.importorskip("omegaconf")
    for name in available_cards():
        cfg = omegaconf.OmegaConf.load(CONF_DIR / f"{name}.yaml")
        assert DeviceCard.from_config(cfg) == load_card(name)


def test_sk_mtj_3state_is_the_published_card():
    card = load_card("sk_mtj_3state")
    assert card.states == ("a", "b", "c") and card.initial_state == "a"
    assert dict(card.read_energy_fJ) == {"a": 1.812, "b": 1.809, "c": 1.807}
    assert dict(card.write_energy_fJ) == {("a", "b"): 5.1, ("b", "a"): 5.1, ("a", "c"): 5.8,
                                          ("c", "a"): 5.8, ("b", "c"): 5.8}
    assert ("c", "b") not in card.write_energy_fJ  # not direct
    assert card.leaky is False and card.reconstruction is False


def test_sk_mtj_3state_cost_matrix():
    card = load_card("sk_mtj_3state")
    # direct entries as published; c -> b is not direct: c -> a -> b = 5.8 + 5.1 = 10.9
    expected = np.array([[0.0, 5.1, 5.8],
                         [5.1, 0.0, 5.8],
                         [5.8, 10.9, 0.0]])
    np.testing.assert_allclose(transition_cost_matrix_fJ(card), expected)
    assert cheapest_path(card, "c", "b") == ["c", "a", "b"]
    assert cheapest_path(card, "a", "c") == ["a", "c"]
    assert cheapest_path(card, "b", "b") == ["b"]


def test_sk_mtj_7state_extends_the_3state_physics():
    card = load_card("sk_mtj_7state")
    three = load_card("sk_mtj_3state")
    assert card.n_states == 7 and card.initial_state == "s0" and card.reconstruction
    cost = transition_cost_matrix_fJ(card)
    # the first three states reproduce the published 3-state costs (s0=a, s1=b, s2=c)
    np.testing.assert_allclose(cost[:3, :3], transition_cost_matrix_fJ(three))
    # forward writes cost the target's energy: W(s3) = 5.8 + 0.7 = 6.5, W(s6) = 5.8 + 4*0.7 = 8.6
    assert cost[0, 3] == pytest.approx(6.5) and cost[2, 3] == pytest.approx(6.5)
    assert cost[0, 6] == pytest.approx(8.6)
    # going down goes through the reset: s3 -> s0 -> s1 = 6.5 + 5.1 = 11.6
    assert cost[3, 1] == pytest.approx(11.6)
    assert cheapest_path(card, "s3", "s1") == ["s3", "s0", "s1"]
    # s6 -> s5 = reset 8.6 + write 7.9 = 16.5
    assert cost[6, 5] == pytest.approx(16.5)
    # reads continue the published trend with -0.002 fJ per state
    np.testing.assert_allclose([card.read_energy_fJ[f"s{i}"] for i in range(7)],
                               [1.812, 1.809, 1.807, 1.805, 1.803, 1.801, 1.799])


def test_rram_card_physical_models():
    card = load_card("rram_hfox_4level")
    assert card.n_states == 4 and card.leaky is False and card.reconstruction
    # reads at 0.1 V for 10 ns: L0 0.01/2.5e4*1e-8 = 4e-15 J = 4 fJ; L3 0.01/1.6e6*1e-8 = 0.0625 fJ
    assert card.read_energy_fJ["L0"] == pytest.approx(4.0)
    assert card.read_energy_fJ["L1"] == pytest.approx(1.0)
    assert card.read_energy_fJ["L3"] == pytest.approx(0.0625)
    # set: 1.0 V * 2e-5 A * 60e-9 s = 1.2e-12 J = 1200 fJ;
    # reset: 1.5 V * 2e-5 A * 60e-9 s = 1.8e-12 J = 1800 fJ per pulse, 3 pulses to L3 = 5400 fJ
    assert card.write_energy_fJ[("L3", "L0")] == pytest.approx(1200.0)
    assert card.write_energy_fJ[("L0", "L3")] == pytest.approx(5400.0)
    cost = transition_cost_matrix_fJ(card)
    # down from L3 to L1 is not direct: set to L0 then one reset pulse = 1200 + 1800 = 3000
    assert cost[3, 1] == pytest.approx(3000.0)
    assert cheapest_path(card, "L3", "L1") == ["L3", "L0", "L1"]
    # L3 -> L2: 1200 + 2*1800 = 4800
    assert cost[3, 2] == pytest.approx(4800.0)
    assert max_bits(card) == 2  # 3 <= 4 < 7


# ------------------------------------------------------------------- physical-model conversion
def test_read_energy_from_resistance_model():
    cfg = minimal_config(states=[
        {"name": "a", "resistance_ohm": 1.0e4, "read_voltage_V": 0.1, "read_time_ns": 10},
        {"name": "b", "read_energy_fJ": 2.0},
        {"name": "c", "resistance_ohm": "2.0e4"},  # PyYAML reads 2.0e4 as a string
    ], read_voltage_V=0.2, read_time_ns=5)
    card = DeviceCard.from_config(cfg)
    # a: V^2/R*t = 0.1^2 / 1e4 * 10e-9 s = 0.01/1e4*1e-8 J = 1e-14 J = 10 fJ
    assert card.read_energy_fJ["a"] == pytest.approx(10.0)
    # c with the top-level defaults: 0.2^2 / 2e4 * 5e-9 = 0.04/2e4*5e-9 = 1e-14 J = 10 fJ
    assert card.read_energy_fJ["c"] == pytest.approx(10.0)


def test_write_energy_from_pulse_model():
    cfg = minimal_config(transitions=[
        {"from": "a", "to": "b", "pulse_voltage_V": 1.5, "pulse_current_A": 1.0e-4,
         "pulse_width_ns": 50},
        {"from": "b", "to": "c", "pulse_voltage_V": 2.0, "pulse_current_A": "5.0e-5",
         "pulse_width_ns": 100, "pulses": 3},
        {"from": "c", "to": "a", "energy_fJ": 4.0},
    ])
    card = DeviceCard.from_config(cfg)
    # a->b: 1.5 V * 1e-4 A * 50e-9 s = 7.5e-12 J = 7500 fJ
    assert card.write_energy_fJ[("a", "b")] == pytest.approx(7500.0)
    # b->c: 3 * 2.0 * 5e-5 * 100e-9 = 3 * 1e-11 J = 3e-11 J = 30000 fJ
    assert card.write_energy_fJ[("b", "c")] == pytest.approx(30000.0)


# -------------------------------------------------------------------------------- validation
def _error(cfg) -> str:
    with pytest.raises(DeviceCardError) as info:
        DeviceCard.from_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    assert "'toy'" in msg  # names the card
    return msg


def test_validation_unknown_state_in_transition():
    cfg = minimal_config()
    cfg["transitions"][1]["to"] = "d"
    msg = _error(cfg)
    assert "transitions[b->d].to" in msg and "'d'" in msg and "a, b, c" in msg


def test_validation_state_names_are_strings():
    for bad in (True, ["a"], ""):
        cfg = minimal_config()
        cfg["states"][0]["name"] = bad
        assert "must be a non-empty string" in _error(cfg)


def test_validation_negative_energy():
    cfg = minimal_config()
    cfg["transitions"][0]["energy_fJ"] = -1.0
    assert "transitions[a->b].energy_fJ" in _error(cfg)
    cfg = minimal_config()
    cfg["states"][2]["read_energy_fJ"] = -0.5
    assert "read_energy_fJ" in _error(cfg)


def test_validation_missing_read_energy():
    cfg = minimal_config()
    del cfg["states"][1]["read_energy_fJ"]
    msg = _error(cfg)
    assert "states[b]" in msg and "read_energy_fJ or resistance_ohm" in msg


def test_validation_duplicate_states_and_bad_initial_state():
    cfg = minimal_config()
    cfg["states"].append({"name": "a", "read_energy_fJ": 1.0})
    assert "duplicate state" in _error(cfg)
    msg = _error(minimal_config(initial_state="z"))
    assert "initial_state" in msg and "'z'" in msg


def test_validation_both_direct_and_model():
    cfg = minimal_config()
    cfg["states"][0]["resistance_ohm"] = 1.0e4
    assert "both read_energy_fJ and resistance_ohm" in _error(cfg)
    cfg = minimal_config()
    cfg["transitions"][0].update(pulse_voltage_V=1.0, pulse_current_A=1e-4, pulse_width_ns=10)
    assert "both energy_fJ and a pulse model" in _error(cfg)


def test_validation_incomplete_models():
    cfg = minimal_config()
    cfg["states"][0] = {"name": "a", "resistance_ohm": 1.0e4, "read_voltage_V": 0.1}
    assert "states[a].read_time_ns" in _error(cfg)
    cfg = minimal_config()
    cfg["transitions"][0] = {"from": "a", "to": "b", "pulse_voltage_V": 1.0,
                             "pulse_width_ns": 10}
    assert "pulse_current_A" in _error(cfg)
    cfg = minimal_config()
    cfg["transitions"][0] = {"from": "a", "to": "b", "pulse_voltage_V": 1.0,
                             "pulse_current_A": 1e-4, "pulse_width_ns": 10, "pulses": 0}
    assert "pulses" in _error(cfg)


def test_validation_misc_keys():
    assert "unknown key" in _error(minimal_config(colour="blue"))
    cfg = minimal_config()
    cfg["transitions"].append({"from": "a", "to": "b", "energy_fJ": 2.0})
    assert "listed twice" in _error(cfg)
    cfg = minimal_config()
    cfg["transitions"].append({"from": "a", "to": "a", "energy_fJ": 2.0})
    assert "self transition" in _error(cfg)
    assert "reconstruction_note" in _error(minimal_config(reconstruction=True))
    assert "leaky" in _error(minimal_config(leaky="no"))
    cfg = minimal_config()
    cfg["states"][0]["read_energy_fJ"] = "lots"
    assert "must be a number" in _error(cfg)


def test_validation_pattern_order():
    cfg = minimal_config(pattern_order=[{"number": 1, "states": ["a", "b", "c"]},
                                        {"number": 2, "states": ["a", "b", "c"]}])
    assert "twice" in _error(cfg)
    cfg = minimal_config(pattern_order=[["a", "b", "c"], ["b", "a", "c"]])
    msg = _error(cfg)
    assert "pattern_order" in msg and "have 6" in msg
    cfg = minimal_config(pattern_order=[{"number": 1, "states": ["a", "a", "c"]}])
    assert "distinct" in _error(cfg)


def test_unreachable_state_error_names_pairs():
    cfg = minimal_config(transitions=[{"from": "a", "to": "b", "energy_fJ": 1.0},
                                      {"from": "b", "to": "a", "energy_fJ": 1.0},
                                      {"from": "a", "to": "c", "energy_fJ": 1.0}])
    card = DeviceCard.from_config(cfg)  # well-formed, but c is a dead end
    with pytest.raises(DeviceCardError) as info:
        transition_cost_matrix_fJ(card)
    msg = str(info.value)
    assert "\n" not in msg
    assert "device 'toy'" in msg
    assert "'c' cannot reach 'a'" in msg and "'c' cannot reach 'b'" in msg


def test_cost_matrix_takes_the_cheapest_path():
    # a->b 1, b->c 2, c->a 4, plus an expensive direct a->c 10: a->b->c = 1 + 2 = 3 < 10
    cfg = minimal_config()
    cfg["transitions"].append({"from": "a", "to": "c", "energy_fJ": 10.0})
    card = DeviceCard.from_config(cfg)
    cost = transition_cost_matrix_fJ(card)
    # b->a = b->c->a = 2 + 4 = 6; c->b = c->a->b = 4 + 1 = 5
    np.testing.assert_allclose(cost, [[0, 1, 3], [6, 0, 2], [4, 5, 0]])
    assert cheapest_path(card, "a", "c") == ["a", "b", "c"]


def test_load_card_errors_and_name_must_match_file(tmp_path):
    with pytest.raises(DeviceCardError, match="available"):
        load_card("no_such_device")
    import yaml

    path = tmp_path / "other_name.yaml"
    path.write_text(yaml.safe_dump(minimal_config()))
    with pytest.raises(DeviceCardError, match="file stem"):
        load_card(path)
    good = tmp_path / "toy.yaml"
    good.write_text(yaml.safe_dump(minimal_config()))
    assert load_card(good).name == "toy"


def test_card_is_frozen():
    card = load_card("sk_mtj_3state")
    with pytest.raises(Exception):
        card.name = "x"
    with pytest.raises(TypeError):
        card.read_energy_fJ["a"] = 0.0
    assert copy.deepcopy(card) == card
    assert pickle.loads(pickle.dumps(card)) == card
    assert hash(pickle.loads(pickle.dumps(card))) == hash(card)


# ------------------------------------------------------------------------------ realizability
def test_max_bits():
    # 2^b - 1 <= n: 3 states -> 2-bit (3 <= 3, 7 > 3); 7 states -> 3-bit (7 <= 7, 15 > 7)
    assert max_bits(load_card("sk_mtj_3state")) == 2
    assert max_bits(load_card("sk_mtj_7state")) == 3


def test_realizability_3state():
    card = load_card("sk_mtj_3state")
    assert check_realizable(card, 2, 1.0).ok
    r = check_realizable(card, 3, 1.0)
    assert not r.ok and "3-bit weights need 7 states" in r.reason and "holds 3" in r.reason
    r = check_realizable(card, 2, 0.5)
    assert not r.ok
    assert r.reason == ("sk_mtj_3state has no spontaneous decay, so it cannot host LIF neurons "
                        "(leak=0.5)")
    r = check_realizable(card, None, 1.0)
    assert not r.ok
    assert r.reason == "fp32 weights need a continuum of states; sk_mtj_3state holds 3"
    assert not check_realizable(card, 4, 0.5).ok


def test_realizability_7state():
    card = load_card("sk_mtj_7state")
    assert check_realizable(card, 3, 1.0).ok and check_realizable(card, 2, 1.0).ok
    assert not check_realizable(card, 4, 1.0).ok
    assert not check_realizable(card, 3, 0.5).ok


def test_leaky_device_hosts_lif():
    card = DeviceCard.from_config(minimal_config(leaky=True))
    assert check_realizable(card, 2, 0.5).ok
    with pytest.raises(ValueError):
        check_realizable(card, 2, 1.5)
