"""The energy wing driven through its real hooks: monitors at T = 4, the write callback step by step,
the cross-process reduction, searched patterns in both sections, the report's choices. Each test
catches a bug that was once planted here and went unnoticed (issue 10)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import CONF
from quest.device import DeviceMapping, load_card
from quest.monitors.activity import ActivityMonitor
from quest.monitors.transitions import TransitionMonitor
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS

IF_HARD = {"name": "if_hard", "theta": 0.5}
SK3 = load_card("sk_mtj_3state")


class FakeStrategy:
    """Sums a tensor with the same tensor of another process (what DDP's reduce does)."""

    def __init__(self, other: dict[str, torch.Tensor] | None = None) -> None:
        self.other = other or {}
        self.key: str | None = None

    def reduce(self, t: torch.Tensor, reduce_op: str = "mean") -> torch.Tensor:
        other = next((v for v in self.other.values() if v.shape == t.shape and v is not t), torch.zeros_like(t))
        total = t + other
        return total if reduce_op == "sum" else total / 2


def fake_trainer(tmp_path: Path, callbacks: list, strategy: FakeStrategy | None = None, epoch: int = 0):
    return SimpleNamespace(
        is_global_zero=True, default_root_dir=str(tmp_path), loggers=[], callbacks=callbacks,
        current_epoch=epoch, global_step=0, sanity_checking=False, strategy=strategy or FakeStrategy(),
    )


def fake_module(net) -> SimpleNamespace:
    return SimpleNamespace(net=net, log_dict=lambda *a, **k: None)


# -- activity at T = 4 -----------------------------------------------------------------------------
def spiking_net(time_steps: int) -> tuple[SimpleNamespace, SpikingConv]:
    torch.manual_seed(0)
    layer = SpikingConv(2, 3, NEURONS["if_hard"](theta=0.5), bits=2, stride=1, padding=1)
    with torch.no_grad():
        layer.quantizer.alpha.fill_(0.5)
        layer.conv.weight.copy_(torch.randint(-1, 2, layer.conv.weight.shape).float() * 2.0)
    net = SimpleNamespace(
        block_names=["conv1", "conv2"], blocks=[None, layer], device_layers=lambda: [("conv2", layer)],
        time_steps=time_steps, encoder=SimpleNamespace(is_static=True), head=[],
    )
    return net, layer


def validate(mon: ActivityMonitor, trainer, net, layer: SpikingConv, x: torch.Tensor) -> torch.Tensor:
    """One validation epoch of one batch through the monitor's hooks; returns the layer's spikes."""
    module = fake_module(SimpleNamespace(block_names=["conv2"], blocks=[layer], head=[]))
    mon.on_validation_epoch_start(trainer, module)
    mon.on_validation_batch_start(trainer, module, None, 0)
    spikes = layer(x, time_steps=x.shape[0])
    mon.on_validation_batch_end(trainer, module, None, None, 0)
    return spikes


def test_activity_report_at_four_time_steps(tmp_path):
    """Spike rate and input spike rate are spikes per neuron (input) per sample summed over T, and the
    CMOS SNN energy is FLOPs * r_in * E_AC: none of them is divided by T."""
    net, layer = spiking_net(time_steps=4)
    mon = ActivityMonitor(DeviceMapping.build(SK3, 2, 1.0, 6))
    trainer = fake_trainer(tmp_path, [mon])
    x = (torch.rand(4, 5, 2, 6, 6, generator=torch.Generator().manual_seed(1)) < 0.4).float()  # T=4, B=5
    layer.observer = mon._observer("conv2")
    with torch.no_grad():
        spikes = layer(x, time_steps=4)
    layer.observer = None
    rep = mon.report({n: v.numpy() for n, v in mon.stats.items()}, net, epoch=0)
    conv = rep["layers"]["conv2"]
    assert spikes.sum() > 20  # the check means something
    assert conv["spike_rate"] == pytest.approx(float(spikes.sum()) / (5 * 3 * 6 * 6))
    assert conv["input_spike_rate"] == pytest.approx(float(x.sum()) / (5 * 2 * 6 * 6))
    flops = 3 * 3 * 2 * 3 * 6 * 6
    assert rep["cmos"]["snn_pJ"] == pytest.approx(flops * float(x.sum()) / (5 * 2 * 6 * 6) * 0.9)
    assert rep["cmos"]["ann_pJ"] == pytest.approx(flops * 4.6)
    assert conv["total_ops_per_sample"] == 4 * flops  # every step's ops


def test_activity_counts_are_summed_across_processes(tmp_path):
    """The validation hooks reduce the counts with a sum before any rate: samples add up, and the
    rate is that of the pooled counts, not of this process."""
    net, layer = spiking_net(time_steps=2)
    x0 = (torch.rand(2, 3, 2, 6, 6, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    x1 = (torch.rand(2, 3, 2, 6, 6, generator=torch.Generator().manual_seed(3)) < 0.7).float()
    other = ActivityMonitor(DeviceMapping.build(SK3, 2, 1.0, 6))  # "process 1"
    validate(other, fake_trainer(tmp_path, [other]), net, layer, x1)
    mon = ActivityMonitor(DeviceMapping.build(SK3, 2, 1.0, 6))  # "process 0"
    trainer = fake_trainer(tmp_path, [mon], FakeStrategy(other.stats))
    validate(mon, trainer, net, layer, x0)
    mon.on_validation_epoch_end(trainer, fake_module(net))
    epoch = json.loads((tmp_path / "energy.json").read_text())["activity"]["epochs"][0]
    assert epoch["samples"] == 6
    assert epoch["layers"]["conv2"]["input_spike_rate"] == pytest.approx(float(x0.sum() + x1.sum()) / (6 * 2 * 36))


# -- write counting through the callback -------------------------------------------------------------
def test_transition_callback_counts_each_step_against_the_previous_one(tmp_path):
    levels = {"now": torch.tensor([0, 0], dtype=torch.int8)}
    layer = SimpleNamespace(quantized=True, quantizer=SimpleNamespace(q_max=1),
                            conv=SimpleNamespace(weight=torch.zeros(2)), weight_levels=lambda: levels["now"])
    net = SimpleNamespace(device_layers=lambda: [("conv2", layer)])
    mon = TransitionMonitor(DeviceMapping.build(SK3, 2, 1.0, 6), windows={})
    trainer, module = fake_trainer(tmp_path, [mon]), fake_module(net)
    mon.on_fit_start(trainer, module)
    mon.on_train_epoch_start(trainer, module)
    batch = (torch.zeros(4, 1), torch.zeros(4))
    for step, now in enumerate([[1, 1], [1, 1]]):  # levels 0,0 -> 1,1 -> 1,1
        levels["now"] = torch.tensor(now, dtype=torch.int8)
        mon.on_train_batch_end(trainer, module, None, batch, step)
    assert mon.epoch_counts["conv2"].tolist() == [[0, 0, 0], [0, 0, 2], [0, 0, 2]]
    mon.on_train_epoch_end(trainer, module)
    rep = json.loads((tmp_path / "energy.json").read_text())["write"]["epochs"][0]["layers"]["conv2"]
    assert rep["transition_counts"] == [[0, 0, 0], [0, 0, 2], [0, 0, 2]]
    # P6 (0 -> a, +1 -> b): 0 -> +1 costs 5.1 fJ; half the 4 transitions: 2.55 fJ per weight update,
    # x 2 weights = 5.1 fJ per batch, / 4 samples
    assert rep["write_energy"]["6"]["per_weight_update_fJ"] == pytest.approx(2.55)
    assert rep["write_energy"]["6"]["per_sample_fJ"] == pytest.approx(5.1 / 4)


# -- searched patterns: the same pattern in both sections ------------------------------------------------
def test_searched_best_pattern_reaches_write_and_read(tmp_path):
    """Above the enumeration limit `best` is searched; the read section must report that pattern."""
    card = load_card("sk_mtj_7state")
    mapping = DeviceMapping.build(card, 3, 1.0, "best", enumeration_limit=100)
    assert mapping.searched and not mapping.patterns
    counts = np.diag(np.full(7, 10.0)) + np.diag(np.full(6, 2.0), 1) + np.diag(np.full(6, 1.0), -1)
    layer = SimpleNamespace(quantized=True, quantizer=SimpleNamespace(q_max=3),
                            conv=SimpleNamespace(weight=torch.zeros(10)), weight_levels=lambda: torch.zeros(10))
    write = TransitionMonitor(mapping, windows={})
    read = ActivityMonitor(mapping)
    write.layers = [("conv2", layer)]
    write.epoch_counts = {"conv2": torch.tensor(counts)}
    write.on_validation_epoch_start(fake_trainer(tmp_path, [write, read]), None)
    section = write._section(write.epoch_counts)
    best = section["best_pattern"]
    assert mapping.write_best == best and [p.number for p in mapping.patterns] == [best]
    out = {"layers": {"conv2": {}}}
    read._read_energies(out, {"conv2": np.arange(7, dtype=np.float64)})
    assert out["selected_pattern"] == best and list(out["layers"]["conv2"]["read_energy_per_sample_fJ"]) == [str(best)]
    enumerated = DeviceMapping.build(card, 3, 1.0, "best")
    full = enumerated.write_energies(counts[None], np.array([10.0]), 1)
    assert full.total_per_batch_fJ.min() == pytest.approx(section["total_per_batch_fJ"][str(best)])


# -- the neuron's leak ---------------------------------------------------------------------------------
def test_device_check_sees_the_leak_the_model_uses():
    """Defect 2: `neuron.leak: null` with a LIF neuron trains with leak 0.5; the mapping must see 0.5."""
    from quest.models.vgg import make_neuron

    spec = {"name": "lif_hard", "theta": 0.5, "leak": None}
    mapping = DeviceMapping.from_config(SK3, 2, spec)
    assert mapping.leak == make_neuron(spec).leak == 0.5
    assert not mapping.neuron and not mapping.realizable


# -- the report's choices --------------------------------------------------------------------------------
def _energy(write: dict[str, float], read: dict[str, float], pattern: int) -> dict:
    """energy.json of a job with layers conv2, conv3 (write/read fJ per sample of its one pattern)."""
    p = str(pattern)
    return {
        "device": {"name": "sk_mtj_3state", "realizable": True},
        "write": {"selected_pattern": pattern,
                  "epochs": [{"layers": {n: {"write_energy": {p: {"per_sample_fJ": e}}} for n, e in write.items()}}]},
        "activity": {"epochs": [{"epoch": 0, "selected_pattern": pattern,
                                 "layers": {n: {"read_energy_per_sample_fJ": {p: e}, "effective_ops_per_sample": 1.0}
                                            for n, e in read.items()}}]},
    }


def test_report_sums_layers_and_picks_the_cheapest_pattern_sibling(tmp_path):
    from quest.report.build import build_context, energy_point

    config = {"seed": 42, "neuron": {"name": "if_hard"}, "precision": {"bits": 2}}
    jobs = {"pattern=1": (1, {"conv2": 10.0, "conv3": 30.0}, {"conv2": 1.0, "conv3": 2.0}),   # 43
            "pattern=2": (2, {"conv2": 25.0, "conv3": 5.0}, {"conv2": 1.0, "conv3": 1.0})}    # 32
    for name, (pattern, write, read) in jobs.items():
        folder = tmp_path / name
        folder.mkdir()
        results = {"status": "completed", "overrides": [name], "test_acc": 0.5,
                   "config": {**config, "pattern": {"selection": pattern}}}
        (folder / "results.json").write_text(json.dumps(results))
        (folder / "energy.json").write_text(json.dumps(_energy(write, read, pattern)))
    ctx = build_context(tmp_path)
    assert len(ctx.networks) == 1
    assert ctx.energy["pattern=1"].write_fJ == 40.0 and ctx.energy["pattern=1"].read_fJ == 3.0
    job, summary = energy_point(ctx, ctx.networks[0])
    assert job.name == "pattern=2" and summary.total_fJ == 32.0


def test_a_searched_3bit_run_reports_its_best_pattern_in_write_and_read(tmp_path):
    """The real train.py: 3-bit on sk_mtj_7state with the best of its 5,040 patterns searched (the
    enumeration limit lowered below 5,040); the write and the read sections report the same pattern."""
    from conftest import TINY, run_train

    proc = run_train([*TINY, "device=sk_mtj_7state", "precision=3", "pattern.enumeration_limit=1000",
                      f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    energy = json.loads((tmp_path / "energy.json").read_text())
    best = energy["write"]["epochs"][-1]["best_pattern"]
    assert energy["write"]["selected_pattern"] == best == energy["activity"]["epochs"][-1]["selected_pattern"]
    assert str(best) in energy["activity"]["epochs"][-1]["layers"]["conv2"]["read_energy_per_sample_fJ"]
    assert energy["device"]["pattern_count"] < 5040  # searched, not enumerated


def test_sweep_reuse_reselects_with_the_mapping_rule():
    from quest.energy.record import last_write_epoch, reselect_pattern

    record = {"device": {"name": "sk_mtj_3state", "pattern_selection": "best"},
              "write": {"selected_pattern": 6, "epochs": [{"best_pattern": 6}]},
              "activity": {"epochs": [{"epoch": 0, "selected_pattern": 6}]}}
    for selection, expected in ((3, 3), ("best", 6)):
        mapping = DeviceMapping.build(SK3, 2, 1.0, selection)
        chosen = mapping.select(write_best=last_write_epoch(record).get("best_pattern"))
        out = reselect_pattern(record, selection, chosen)
        assert out["write"]["selected_pattern"] == expected == out["activity"]["epochs"][0]["selected_pattern"]
        assert out["device"]["pattern_selection"] == selection
