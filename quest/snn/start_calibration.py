"""Opt-in remedy for quantized layers that start silent: a data-driven start (not in the paper).

With the paper's init (PyTorch's default conv init, alpha_0 = 2 mean|w| / sqrt(Q), no BatchNorm,
theta = 0.5) a quantized layer's input current is about alpha-sized and its membrane is clamped to
+-alpha << theta, so at 3 and 4 bits (alpha shrinks as 1/sqrt(Q)) the layers past conv2 start
silent and the network never leaves loss ln 10 (reproduction/README.md).

`calibrate_start` fixes the start only. For each quantized layer in order, on one batch, it finds a
gain g and sets

    w <- g * w,    alpha <- 2 mean|w| / sqrt(Q)   (the paper's alpha rule, on the scaled weights)

so that the layer's spike rate per neuron per time step equals `target` (g bracketed by doubling or
halving from 1 within [1/16, 64], then bisected); the layer's output then feeds the next layer's calibration. Scaling the weights
and alpha together scales q(w) and the membrane clamp alike (tanh(w) ~ w), which is what a lower
threshold would do, while theta stays 0.5 and integer inference is unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from quest.snn.layers import SpikingConv

G_MIN, G_MAX, ITERATIONS = 1.0 / 16.0, 64.0, 8


def _layer_rate(block: SpikingConv, inp: torch.Tensor, time_steps: int, static: bool) -> float:
    """Spikes per neuron per time step of `block` (before its pool) on input `inp`."""
    membrane_q = block.quantizer if block.quantize_membrane else None
    return float(block.neuron(block.current(inp, time_steps, static), membrane_q).float().mean())


def _fit_gain(block: SpikingConv, inp: torch.Tensor, time_steps: int, static: bool, target: float) -> float:
    """Set block's weights to g * w (and alpha by the paper's rule) with rate(g) ~ target; returns g.

    The rate rises with g while tanh(g w) ~ g w, and falls again once tanh saturates (alpha keeps
    growing, levels round to 0), so g is bracketed by doubling (or halving) from 1, then bisected."""
    w0 = block.conv.weight.detach().clone()

    def rate(g: float) -> float:
        block.conv.weight.copy_(w0 * g)
        block.quantizer.init_alpha(block.conv.weight)
        return _layer_rate(block, inp, time_steps, static)

    lo = hi = 1.0
    if rate(1.0) < target:  # bracket [lo, hi] with rate(lo) < target <= rate(hi)
        while hi < G_MAX:
            lo, hi = hi, hi * 2.0
            if rate(hi) >= target:
                break
        else:
            rate(G_MAX)
            return G_MAX
    else:
        while lo > G_MIN:
            lo, hi = lo / 2.0, lo
            if rate(lo) < target:
                break
        else:
            rate(G_MIN)
            return G_MIN
    for _ in range(ITERATIONS):
        mid = math.sqrt(lo * hi)
        if rate(mid) < target:
            lo = mid
        else:
            hi = mid
    g = math.sqrt(lo * hi)
    rate(g)
    return g


@torch.no_grad()
def calibrate_start(net: nn.Module, x: torch.Tensor, target: float) -> dict[str, float]:
    """Scale each quantized layer of a SpikingVGG so it fires at `target` on images x; returns gains."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"module.start_spike_rate={target!r}: must be in (0, 1), or null for the paper's init")
    was_training = net.training
    net.eval()
    gains: dict[str, float] = {}
    try:
        inp = net.encoder(x)
        static = net.encoder.is_static
        for name, block in zip(net.block_names, net.blocks):
            if block.quantizer is not None:
                gains[name] = _fit_gain(block, inp, net.time_steps, static, target)
            inp = block(inp, net.time_steps, static=static)
            static = False
    finally:
        net.train(was_training)
    return gains
