"""Spiking VGG: shapes over T, presets, quantize-once, integer-only inference identity."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from quest.models.vgg import SpikingVGG
from quest.snn.encoding import DirectEncoder, LatencyEncoder, RateEncoder
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS

IF_HARD = {"name": "if_hard", "theta": 0.5}


@pytest.mark.parametrize("time_steps", [1, 2, 4])
@pytest.mark.parametrize("encoder_cls", [DirectEncoder, RateEncoder, LatencyEncoder])
def test_logits_shape_over_t(time_steps, encoder_cls):
    net = SpikingVGG(encoder_cls(time_steps), IF_HARD, bits=2, width_mult=0.0625)
    out = net(torch.randn(3, 3, 32, 32))
    assert out.shape == (time_steps, 3, 10)


def test_vgg8_preset_matches_reference_sizes(compose_cfg):
    # REFERENCE.md section 2: quantized layers' weights and neurons per sample per step
    net = instantiate(compose_cfg([]).model)
    weights = [blk.conv.weight.numel() for _, blk in net.device_layers()]
    assert weights == [147_456, 294_912, 589_824, 1_179_648, 2_359_296]
    neurons = []
    for _, blk in net.device_layers():
        blk.observer = lambda layer, x, s: neurons.append(s[0, 0].numel())
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32))
    assert neurons == [131_072, 65_536, 65_536, 32_768, 32_768]
    assert out.shape == (4, 1, 10)
    assert [m.in_features for m in net.head] == [8192, 1024]
    first = net.blocks[0]
    assert first.quantizer is None and first.neuron.soft_reset  # encoding layer: fp, soft reset


def test_vgg9_preset_and_width_multiplier(compose_cfg):
    net = instantiate(compose_cfg(["model=vgg9", "model.width_mult=0.5"]).model)
    widths = [blk.conv.out_channels for blk in net.blocks]
    assert widths == [32, 32, 64, 64, 128, 128, 128]
    assert net(torch.randn(2, 3, 32, 32)).shape == (4, 2, 10)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_weights_quantized_once_per_forward(backend):
    net = SpikingVGG(DirectEncoder(4), {**IF_HARD, "backend": backend}, bits=2, width_mult=0.0625)
    calls = {"weight": 0}
    for _, blk in net.device_layers():
        shape = blk.conv.weight.shape
        blk.quantizer.register_forward_hook(
            lambda m, args, out, shape=shape: calls.__setitem__("weight", calls["weight"] + (args[0].shape == shape))
        )
    net(torch.randn(2, 3, 32, 32))
    assert calls["weight"] == len(net.device_layers())


def test_fp32_precision_has_no_quantizers():
    net = SpikingVGG(DirectEncoder(2), IF_HARD, bits=None, width_mult=0.0625)
    assert all(blk.quantizer is None for blk in net.blocks)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("neuron", sorted(NEURONS))
def test_integer_inference_gives_the_same_spikes(bits, neuron):
    """Integer weights, integer membrane and integer threshold reproduce the dequantized model."""
    torch.manual_seed(bits)
    layer = SpikingConv(16, 24, NEURONS[neuron](theta=0.5), bits=bits).double()
    with torch.no_grad():
        layer.conv.weight.normal_(0.0, 0.25)
        layer.quantizer.alpha.fill_(0.6)
    spikes_in = (torch.rand(6, 4, 16, 10, 10) < 0.3).double()
    float_spikes = layer(spikes_in, time_steps=6)
    int_spikes, int_membrane = layer.integer_forward(spikes_in)
    assert float_spikes.sum() > 0 and (float_spikes == 0).any()  # a real test: some fire, some don't
    assert torch.equal(int_spikes, float_spikes.bool())
    assert int_membrane.abs().max() <= layer.quantizer.q_max
    assert (int_membrane != 0).any()  # the membrane actually carries charge between steps


def test_rate_and_latency_encoders_make_binary_spikes():
    x = torch.rand(2, 3, 8, 8)
    rate = RateEncoder(8)(x)
    assert rate.shape == (8, 2, 3, 8, 8) and set(rate.unique().tolist()) <= {0.0, 1.0}
    lat = LatencyEncoder(4)(x)
    assert (lat.sum(0) <= 1).all()  # at most one spike per pixel
    bright = torch.ones(1, 3, 1, 1)
    assert LatencyEncoder(4)(bright)[:, 0, 0, 0, 0].tolist() == [1.0, 0.0, 0.0, 0.0]  # brightest fires first
