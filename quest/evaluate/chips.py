"""A trained network on one programmed chip: its device layers compute with the chip's weights, and
each read of a cell is perturbed by the read noise (issue 12, evaluation side).

A device layer (every quantized conv) of scale s = alpha / Q computes with w = s * W_eff, W_eff the
chip's effective levels (quest.device.chip); with every model off, w equals the quantizer's q(w)
bit for bit. Read noise: every read of a cell, i.e. every multiply-accumulate of every time step,
sample and output position, is w_i (1 + sigma_i N). For one output that is

    I = sum_i x_i w_i (1 + sigma_i N_i) = conv(x, w) + sqrt(conv(x^2, (w sigma)^2)) * N,

exact in distribution (independent reads), and as cheap as two convolutions. With read noise on,
the layer runs the reference neuron backend (the fused kernel takes no current); with sigma 0 the
layer is not touched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quest.device.chip import ChipSpec, ProgrammedLayer, program_layer
from quest.snn.layers import SpikingConv


def device_layers(model: nn.Module) -> list[tuple[str, SpikingConv]]:
    """(name, layer) of every quantized conv: the layers whose weights live in device cells."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingConv) and m.quantized]


def program_model(model: nn.Module, spec: ChipSpec, seed: int) -> dict[str, ProgrammedLayer]:
    """Each device layer's levels written into chip `seed` (layer i draws with key (seed, i))."""
    with torch.no_grad():
        return {name: program_layer(layer.weight_levels().cpu().numpy(), spec, seed, i)
                for i, (name, layer) in enumerate(device_layers(model))}


def noisy_current(layer: SpikingConv, sigma: torch.Tensor, generator: torch.Generator, straight_through: bool = False):
    """layer.current with independent read noise on every read (the module docstring). With
    `straight_through` (hardware-aware training) the noise term is a constant to autograd: gradients
    flow as if the reads were noise-free."""

    def current(x: torch.Tensor, time_steps: int, static: bool = False) -> torch.Tensor:
        out = SpikingConv.current(layer, x, time_steps, static)
        c = layer.conv
        with torch.set_grad_enabled(torch.is_grad_enabled() and not straight_through):
            w2 = (layer.weight() * sigma) ** 2
            if static:
                var = F.conv2d(x * x, w2, None, c.stride, c.padding).unsqueeze(0).expand_as(out)
            else:
                var = F.conv2d((x * x).flatten(0, 1), w2, None, c.stride, c.padding).unflatten(0, out.shape[:2])
            noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            return out + var.clamp_min(0).sqrt() * noise

    return current


@contextmanager
def on_chip(model: nn.Module, chip: dict[str, ProgrammedLayer], seed: int) -> Iterator[nn.Module]:
    """`model` computing on `chip` (from `program_model`) inside the block; restored after it."""
    layers = dict(device_layers(model))
    saved: list[tuple[SpikingConv, str]] = []
    try:
        for i, (name, programmed) in enumerate(chip.items()):
            layer = layers[name]
            ref = layer.conv.weight
            with torch.no_grad():
                levels = torch.from_numpy(programmed.effective_levels).to(ref.device, ref.dtype)
                w = levels * (layer.quantizer.scale() / layer.quantizer.q_max)
            layer.weight = lambda w=w: w  # type: ignore[method-assign]  # an instance attribute shadows the method
            if programmed.read_sigma.any():
                sigma = torch.from_numpy(programmed.read_sigma).to(ref.device, ref.dtype)
                g = torch.Generator(device=ref.device).manual_seed(int(np.uint32(seed)) * 1000 + i)
                layer.current = noisy_current(layer, sigma, g)  # type: ignore[method-assign]
                saved.append((layer, layer.neuron.backend))
                layer.neuron.backend = "reference"
        yield model
    finally:
        for layer in layers.values():
            layer.__dict__.pop("weight", None)
            layer.__dict__.pop("current", None)
        for layer, backend in saved:
            layer.neuron.backend = backend
