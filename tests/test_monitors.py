"""Energy monitors against numbers worked by hand (REFERENCE.md sections 8 and 9)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from conftest import CONF
from quest.device import DeviceCard, DeviceMapping
from quest.monitors.activity import ActivityMonitor, ops_per_level
from quest.monitors.transitions import TransitionMonitor, quest_subset, transition_counts
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS

SK3 = DeviceCard.from_yaml(CONF / "device" / "sk_mtj_3state.yaml")
IF_HARD = {"name": "if_hard", "theta": 0.5}


def sk3_config():
    from omegaconf import OmegaConf

    return OmegaConf.load(CONF / "device" / "sk_mtj_3state.yaml")


def mapping(device, bits, neuron, pattern="best") -> DeviceMapping:
    return DeviceMapping.from_config(device, bits, neuron, pattern)


def test_transition_counts_by_hand():
    prev = torch.tensor([-1, -1, 0, 0, 0, 1, 1, 1], dtype=torch.int8)
    cur = torch.tensor([-1, 0, 0, 1, -1, 1, 0, 1], dtype=torch.int8)
    # -1->-1: 1, -1->0: 1 | 0->0: 1, 0->+1: 1, 0->-1: 1 | +1->+1: 2, +1->0: 1
    assert transition_counts(prev, cur, 1).tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 2]]


@pytest.mark.parametrize("q_max", [1, 3, 7])
def test_transition_counts_equal_the_int64_definition(q_max):
    """The uint8 pair index gives the counts of the plain int64 form, every (i, j) pair included
    (the extremes -Q -> Q and Q -> -Q reach the largest index, k^2 - 1)."""
    g = torch.Generator().manual_seed(q_max)
    prev = torch.randint(-q_max, q_max + 1, (3, 5, 3, 3), generator=g, dtype=torch.int8)
    cur = torch.randint(-q_max, q_max + 1, (3, 5, 3, 3), generator=g, dtype=torch.int8)
    prev.view(-1)[:2], cur.view(-1)[:2] = torch.tensor([-q_max, q_max]), torch.tensor([q_max, -q_max])
    k = 2 * q_max + 1
    plain = torch.zeros(k, k, dtype=torch.int64)
    for i, j in zip(prev.flatten().tolist(), cur.flatten().tolist()):
        plain[i + q_max, j + q_max] += 1
    assert torch.equal(transition_counts(prev, cur, q_max), plain)


def test_quest_subset_shape():
    levels = torch.zeros(128, 64, 3, 3, dtype=torch.int8)
    assert quest_subset(levels).shape == (32, 16, 2, 2)


def small_layer() -> tuple[SpikingConv, torch.Tensor]:
    """1 -> 2 channels, 3x3, stride 2, padding 1, on a 4x4 input with spikes at (0,0), (1,1), (3,3)."""
    layer = SpikingConv(1, 2, NEURONS["if_hard"](theta=0.5), bits=2, stride=2, padding=1)
    levels = torch.tensor(
        [[[1, 0, -1], [0, 1, 0], [0, 0, 1]], [[0, 0, 0], [0, -1, 0], [1, 1, 1]]], dtype=torch.float32
    ).unsqueeze(1)
    with torch.no_grad():
        layer.quantizer.alpha.fill_(0.5)
        layer.conv.weight.copy_(levels * 2.0)  # tanh(2)/.5 > 1 -> clamps to the level
    x = torch.zeros(1, 1, 1, 4, 4)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = x[0, 0, 0, 3, 3] = 1.0
    return layer, x


def test_ops_per_level_with_padding_and_stride():
    # Output (oh, ow) reads input (2 oh + i - 1, 2 ow + j - 1). A[i, j] = output positions whose
    # offset (i, j) sees a spike: (0,0) -> A[1,1]; (1,1) -> A[0,0], A[0,2], A[2,0], A[2,2];
    # (3,3) -> A[2,2].  A = [[1,0,1],[0,1,0],[1,0,2]].
    # N(+1) = out0 (0,0)+(1,1)+(2,2) = 1+1+2 = 4, out1 (2,0)+(2,1)+(2,2) = 1+0+2 = 3 -> 7
    # N(-1) = out0 (0,2) = 1, out1 (1,1) = 1 -> 2
    layer, x = small_layer()
    n = ops_per_level(x, layer.weight_levels().long() + 1, 3, stride=2, padding=1)
    assert n[0].item() == 2 and n[2].item() == 7


def test_activity_report_by_hand():
    layer, x = small_layer()
    mon = ActivityMonitor(mapping(sk3_config(), 2, IF_HARD, 6))
    net = SimpleNamespace(
        block_names=["conv2"], blocks=[layer], device_layers=lambda: [("conv2", layer)],
        time_steps=1, encoder=SimpleNamespace(is_static=False), head=[],
    )
    layer.observer = mon._observer("conv2")
    spikes = layer(x, time_steps=1)
    # currents (alpha/Q = .5 per level): out0 at (0,0): 1+1 -> 1.0 fires; (1,1): 1+1 fires;
    # every other output stays <= .5 -> 2 spikes of 8 neurons
    assert spikes.sum().item() == 2
    report = mon.report({n: v.numpy() for n, v in mon.stats.items()}, net, epoch=0)
    rep = report["layers"]["conv2"]
    assert rep["spike_rate"] == pytest.approx(2 / 8)
    assert rep["input_spike_rate"] == pytest.approx(3 / 16)
    assert rep["weight_sparsity"] == pytest.approx(10 / 18)
    # all ops: FLOPs = 3*3 * 1 * 2 * 2 * 2 = 72; effective 7 + 2 = 9 -> AOR = .125
    assert rep["total_ops_per_sample"] == 72
    assert rep["aor"] == pytest.approx(9 / 72)
    # P6: -1 -> c (1.807 fJ), +1 -> b (1.809 fJ): 7 * 1.809 + 2 * 1.807 = 16.277
    assert rep["read_energy_per_sample_fJ"]["6"] == pytest.approx(16.277)
    # P1: -1 -> a (1.812), +1 -> c (1.807): 2 * 1.812 + 7 * 1.807 = 16.273
    assert rep["read_energy_per_sample_fJ"]["1"] == pytest.approx(16.273)
    # CMOS: ANN 72 * 4.6 = 331.2 pJ; SNN 72 * (3/16) * 0.9 = 12.15 pJ
    assert report["cmos"]["ann_pJ"] == pytest.approx(331.2)
    assert report["cmos"]["snn_pJ"] == pytest.approx(12.15)
    assert report["selected_pattern"] == 6


def test_activity_counts_are_exact_under_bf16_autocast():
    """With trainer.precision=bf16-mixed the fused layers emit bf16 spikes; the monitor's counts must
    still be exact (a bf16 sum of 5,476 ones would round to 5,472)."""
    torch.manual_seed(0)
    layer = SpikingConv(4, 8, NEURONS["if_hard"](theta=0.5), bits=2)
    with torch.no_grad():
        layer.quantizer.alpha.fill_(0.5)
        layer.conv.weight.copy_(torch.randint(-1, 3, layer.conv.weight.shape).float() * 2.0)  # levels -1, 0, +1
    x = torch.ones(1, 1, 4, 37, 37)  # 5,476 input spikes
    counts = []
    for mixed in (False, True):
        mon = ActivityMonitor(mapping(sk3_config(), 2, IF_HARD, 6))
        layer.observer = mon._observer("conv2")
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            spikes = layer(x, time_steps=1)
        counts.append((mon.stats["conv2"][1].item(), mon.stats["conv2"][2].item(), spikes.sum(dtype=torch.float64).item()))
    assert counts[1][1] == 4 * 37 * 37 and counts[0][1] == 4 * 37 * 37
    assert counts[1][0] == counts[1][2] and counts[0][0] == counts[0][2]  # spikes counted exactly
    assert counts[1][0] > 256


def _measure(mon: ActivityMonitor, layer: SpikingConv, x: torch.Tensor) -> dict:
    layer.observer = mon._observer("conv2")
    layer(x, time_steps=1)
    net = SimpleNamespace(
        block_names=["conv2"], blocks=[layer], device_layers=lambda: [("conv2", layer)],
        time_steps=1, encoder=SimpleNamespace(is_static=False), head=[],
    )
    return mon.report({n: v.numpy() for n, v in mon.stats.items()}, net, epoch=0)


def test_weights_that_do_not_fit_report_reason_instead_of_numbers():
    layer, x = small_layer()  # the layer's own levels are 2-bit; the mapping says 3-bit on 3 states
    mon = ActivityMonitor(mapping(sk3_config(), 3, IF_HARD, "best"))
    rep = _measure(mon, layer, x)["layers"]["conv2"]
    assert rep["read_energy_per_sample_fJ"] == (
        "not realizable on sk_mtj_3state: 3-bit weights need 7 states; sk_mtj_3state holds 3 (at most 2-bit)")
    assert rep["aor"] == pytest.approx(9 / 72)  # activity itself is still measured


def test_lif_on_a_non_leaky_card_keeps_synapse_energy_and_flags_the_neuron():
    """Issue 16 item 7: synapse energy does not depend on the neuron."""
    lif = {"name": "lif_hard", "theta": 0.5, "leak": 0.5}
    layer, x = small_layer()
    m = mapping(sk3_config(), 2, lif, 6)
    rep = _measure(ActivityMonitor(m), layer, x)["layers"]["conv2"]
    assert rep["read_energy_per_sample_fJ"]["6"] == pytest.approx(16.277)  # as for IF below
    device = m.summary()
    assert device["synapse_realizable"] is True and device["realizable"] is False
    assert device["neuron_hostable"] is False
    assert device["neuron_not_hostable"] == ("neuron not hostable on sk_mtj_3state: sk_mtj_3state has no "
                                             "spontaneous decay, so it cannot host LIF neurons (leak=0.5)")
    assert device["not_realizable"].startswith("not realizable on sk_mtj_3state: ") and "LIF" in device["not_realizable"]


def test_write_energy_section_by_hand():
    mon = TransitionMonitor(mapping(sk3_config(), 2, IF_HARD, "best"))
    # 100 weights, counts over 2 updates: 180 stay, 10 (0 -> +1), 6 (+1 -> 0), 4 (-1 -> 0)
    counts = torch.tensor([[40, 4, 0], [0, 100, 10], [0, 6, 40]])
    mon.batch_size = 50
    layer = SimpleNamespace(conv=SimpleNamespace(weight=torch.zeros(100)), weight_levels=lambda: torch.zeros(100))
    mon.layers = [("conv2", layer)]
    section = mon._section({"conv2": counts})
    rep = section["layers"]["conv2"]
    # P6: 0->+1 5.1, +1->0 5.1, -1->0 5.8: (10*5.1 + 6*5.1 + 4*5.8) / 200 = 104.8 / 200 = .524 fJ
    assert rep["write_energy"]["6"]["per_weight_update_fJ"] == pytest.approx(0.524)
    assert rep["write_energy"]["6"]["per_batch_fJ"] == pytest.approx(52.4)
    assert rep["write_energy"]["6"]["per_sample_fJ"] == pytest.approx(52.4 / 50)
    # P1 (-1 a, 0 b, +1 c): 0->+1 = b->c 5.8, +1->0 = c->b 10.9, -1->0 = a->b 5.1:
    # (58 + 65.4 + 20.4) / 200 = .719
    assert rep["write_energy"]["1"]["per_weight_update_fJ"] == pytest.approx(0.719)
    assert rep["updates"] == 2 and rep["non_adjacent_share"] == 0.0
    assert rep["changed_share"] == pytest.approx(20 / 200)
    # best of the six for these transitions: P2 (-1 b, 0 a, +1 c): 0->+1 a->c 5.8, +1->0 c->a 5.8,
    # -1->0 b->a 5.1: (58 + 34.8 + 20.4) / 200 = .566; P6 .524 is lower, and lowest of all six
    assert rep["write_energy"]["2"]["per_weight_update_fJ"] == pytest.approx(0.566)
    assert section["best_pattern"] == 6 and mon.selected_pattern(section) == 6


def test_best_pattern_on_7_states_at_3_bit_evaluates_all_5040():
    from omegaconf import OmegaConf

    card = OmegaConf.load(CONF / "device" / "sk_mtj_7state.yaml")
    mon = TransitionMonitor(mapping(card, 3, IF_HARD, "best"))
    assert len(mon.mapping.patterns) == 5040
    layer = SimpleNamespace(conv=SimpleNamespace(weight=torch.zeros(10)), weight_levels=lambda: torch.zeros(10))
    mon.layers = [("conv2", layer)]
    counts = torch.diag(torch.full((7,), 10)) + torch.diag(torch.full((6,), 2), 1) + torch.diag(torch.full((6,), 1), -1)
    section = mon._section({"conv2": counts})
    energies = section["layers"]["conv2"]["write_energy"]
    assert len(energies) <= 12 and str(section["best_pattern"]) in energies  # cheapest 10, best, worst
    best = energies[str(section["best_pattern"])]["per_weight_update_fJ"]
    assert best == min(e["per_weight_update_fJ"] for e in energies.values())


def test_bad_pattern_number_names_the_key():
    with pytest.raises(ValueError, match=r"pattern\.selection=7: sk_mtj_3state at 2-bit has patterns 1\.\.6"):
        TransitionMonitor(mapping(sk3_config(), 2, IF_HARD, 7))


def test_counts_from_the_forward_levels_equal_counting_after_every_step(tmp_path):
    """The monitor counts a step's transition from the levels the next forward computes (or at the
    end of an epoch, at a mid-epoch validation, before a checkpoint): its epoch and window counts equal
    the definition's, levels computed right after every optimizer step (a test callback)."""
    import json

    from conftest import TINY, run_train

    ref = tmp_path / "reference.json"
    proc = run_train([
        *TINY, "precision=2", "trainer.max_epochs=2", "data.batch_size=16", "+trainer.val_check_interval=3",
        "callbacks.last_checkpoint.every_n_steps=2",
        "+callbacks.reference._target_=helpers.callbacks.CountTransitionsAfterEveryStep", f"+callbacks.reference.out={ref}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ])
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = json.loads(ref.read_text())
    write = json.loads((tmp_path / "run" / "energy.json").read_text())["write"]
    got = [{n: rep["transition_counts"] for n, rep in ep["layers"].items()} for ep in write["epochs"]]
    assert got == want["epochs"]
    assert {n: rep["transition_counts"] for n, rep in write["windows"]["early"]["layers"].items()} == want["early"]
    assert any(c[i][j] for ep in got for c in ep.values() for i in range(len(c)) for j in range(len(c)) if i != j)
