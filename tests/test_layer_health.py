"""Layer health (silent neurons, membrane saturation, alpha) and the opt-in start calibration.

The paper's init leaves 3/4-bit layers past conv2 silent (reproduction/README.md); these tests pin
the measurement by hand, the finding on a real run, and the remedy's effect and opt-in default.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from conftest import TINY, run_train
from quest.monitors.layer_health import measure_health
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS
from quest.snn.start_calibration import calibrate_start


class _OneLayer(nn.Module):
    def __init__(self, layer: SpikingConv, time_steps: int) -> None:
        super().__init__()
        self.layer, self.time_steps = layer, time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, self.time_steps, static=False)


def test_health_by_hand():
    # 1x1 conv, 1 -> 2 channels, alpha 0.9, 2-bit: w = +2 -> level +1 (q = +0.9), w = -2 -> q = -0.9.
    # Input: position 0 spikes at every step, position 1 never; T = 3, IF hard reset, theta 0.5.
    # ch0 pos0: H = 0.9 every step -> 3 spikes, U' = 0 (reset).          ch0/ch1 pos1: H = 0, silent.
    # ch1 pos0: t0 H = -0.9, U' = -0.9 (|tanh| = 0.716 < 0.9); q -> -0.9 (level -1)
    #           t1 H = -1.8, U' = -1.8 (|tanh| = 0.947 >= 0.9: clamped).  t2 not carried.
    # rate = 3 / (T 3 * B 1 * neurons 4) = 0.25; silent = 3 of 4; saturation = 1 of (2 steps * 4).
    layer = SpikingConv(1, 2, NEURONS["if_hard"](theta=0.5), bits=2, kernel_size=1, padding=0)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor([2.0, -2.0]).view(2, 1, 1, 1))
        layer.quantizer.alpha.fill_(0.9)
    x = torch.zeros(3, 1, 1, 1, 2)
    x[:, 0, 0, 0, 0] = 1.0
    h = measure_health(_OneLayer(layer, 3), [x])["layer"]
    assert h["spike_rate_per_step"] == pytest.approx(0.25)
    assert h["silent_fraction"] == pytest.approx(0.75)
    assert h["saturation_share"] == pytest.approx(1 / 8)
    assert h["alpha"] == pytest.approx(0.9)
    assert h["alpha_over_theta"] == pytest.approx(1.8)
    assert h["samples"] == 1


def _tiny_vgg(bits: int):
    from quest.models.vgg import SpikingVGG
    from quest.snn.encoding import DirectEncoder

    torch.manual_seed(0)
    return SpikingVGG(DirectEncoder(time_steps=4), {"name": "if_hard", "theta": 0.5},
                      layers=(16, 16, "M", 32, 32, "M", 64, 64), bits=bits)


def _health_beside_the_fast_forward(net: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """The definition, the slow way: run the net as trained (fused path) and, before every spiking
    layer, recompute its spikes and membrane from the input it was given: (rate, silent, saturation)."""
    seen: dict[str, tuple] = {}

    def hook(name):
        def measure(layer, args, kwargs):
            x_in, t_steps = args[0], args[1]
            static = args[2] if len(args) > 2 else kwargs.get("static", False)
            cur = layer.current(x_in, t_steps, static).float()
            u, per_neuron, clamped, carried = torch.zeros_like(cur[0]), torch.zeros(cur.shape[2:]), 0, 0
            for t in range(t_steps):
                s, u_pre = layer.neuron.step(cur[t], u, None)
                per_neuron += s.sum(0)
                if layer.quantize_membrane and t < t_steps - 1:
                    clamped += int((torch.tanh(u_pre).abs() >= layer.quantizer.scale()).sum())
                    carried += u_pre.numel()
                u = layer.quantizer(u_pre) if layer.quantize_membrane else u_pre
            rate = float(per_neuron.sum()) / (t_steps * cur.shape[1] * per_neuron.numel())
            seen[name] = (rate, float((per_neuron == 0).double().mean()), clamped / carried if carried else None)
        return measure

    handles = [m.register_forward_pre_hook(hook(n), with_kwargs=True)
               for n, m in net.named_modules() if isinstance(m, SpikingConv)]
    with torch.no_grad():
        net.eval()
        net(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("bits, autocast", [(2, False), (4, False), (2, True)])
def test_one_measuring_pass_equals_the_measurement_beside_the_fast_forward(bits, autocast):
    """measure_health runs the batch once, each layer by the fused forward scan keeping H; its numbers
    equal those recomputed layer by layer by the reference neuron beside the fused forward (the next
    layer's input included), also under bf16 autocast (bf16 convs, fp32 membrane)."""
    from quest.monitors.layer_health import layer_names

    net = _tiny_vgg(bits)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    calibrate_start(net, x, 0.1)  # every layer fires, so what reaches the later layers matters
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        health = measure_health(net, [x])
        slow = _health_beside_the_fast_forward(net, x)
    for path, name in layer_names(net).items():
        rate, silent, saturation = slow[path]
        h = health[name]
        assert rate > 0
        assert h["spike_rate_per_step"] == pytest.approx(rate, rel=1e-12)
        assert h["silent_fraction"] == pytest.approx(silent, rel=1e-12)
        assert h["saturation_share"] == (pytest.approx(saturation, rel=1e-12) if saturation is not None else None)


def test_start_calibration_reaches_target_and_keeps_the_alpha_rule():
    net = _tiny_vgg(4)
    torch.manual_seed(1)
    x = torch.randn(32, 3, 32, 32)
    before = measure_health(net, [x])
    assert before["conv6"]["spike_rate_per_step"] == 0.0  # the paper's init: silent at 4-bit
    gains = calibrate_start(net, x, 0.1)
    after = measure_health(net, [x])
    assert set(gains) == {"conv2", "conv3", "conv4", "conv5", "conv6"}
    for name, layer in net.device_layers():
        assert gains[name] > 1.0
        assert after[name]["spike_rate_per_step"] == pytest.approx(0.1, abs=0.02)
        q = layer.quantizer
        assert float(q.alpha.detach()) == pytest.approx(2 * float(layer.conv.weight.detach().abs().mean()) / math.sqrt(q.q_max), rel=1e-6)
    assert after["conv1"] == before["conv1"]  # the full-precision encoding layer is not touched


def test_start_calibration_rejects_bad_rate():
    with pytest.raises(ValueError, match="module.start_spike_rate"):
        calibrate_start(_tiny_vgg(2), torch.randn(2, 3, 32, 32), 1.5)


def test_paper_init_is_the_default(compose_cfg):
    assert compose_cfg([])["module"]["start_spike_rate"] is None


def _health(run_dir):
    return json.loads((run_dir / "layer_health.json").read_text())["history"]


@pytest.mark.slow
def test_run_records_health_and_the_remedy_wakes_4_bit(tmp_path):
    paper = run_train([*TINY, "precision=4", f"hydra.run.dir={tmp_path / 'paper'}"])
    assert paper.returncode == 0, paper.stderr[-2000:]
    hist = _health(tmp_path / "paper")
    assert [h["stage"] for h in hist] == ["init", "epoch"]
    init = hist[0]["layers"]
    assert list(init) == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6"]
    assert init["conv6"]["spike_rate_per_step"] == 0.0 and init["conv6"]["silent_fraction"] == 1.0
    metrics = (tmp_path / "paper" / "csv").rglob("metrics.csv")
    header = next(iter(metrics)).read_text().splitlines()[0]
    assert "health/conv2/silent_fraction" in header and "health/conv6/saturation_share" in header

    fixed = run_train([*TINY, "precision=4", "module.start_spike_rate=0.1", f"hydra.run.dir={tmp_path / 'fixed'}"])
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    init = _health(tmp_path / "fixed")[0]["layers"]
    for name in ("conv2", "conv3", "conv4", "conv5", "conv6"):
        assert 0.05 < init[name]["spike_rate_per_step"] < 0.2, (name, init[name])
    import csv

    rows = list(csv.DictReader(next((tmp_path / "fixed" / "csv").rglob("metrics.csv")).open()))
    gains = [float(r["start_gain/conv6"]) for r in rows if r.get("start_gain/conv6")]
    assert len(gains) == 1 and gains[0] > 1.0  # logged once, at step 0
