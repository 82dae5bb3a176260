"""A spiking conv layer: conv -> neuron scan over T (-> pool), optionally MINT-quantized.

Execution is layer by layer over all T steps: the conv runs once on the T*B inputs (or once on
the B images when the input is static, as with direct encoding), then the neuron scans T.
A quantized layer quantizes its weights once per forward, and its neuron quantizes the membrane
with the same quantizer (shared alpha).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from quest.snn.neurons import SpikingNeuron
from quest.snn.quantizer import MintQuantizer

# observer(layer, input, spikes): input [T, B, C, H, W] (or [B, C, H, W] when static), spikes
# [T, B, C', H', W'] before pooling. Set by the activity monitor on the batches it measures.
Observer = Callable[["SpikingConv", torch.Tensor, torch.Tensor], None]


class SpikingConv(nn.Module):
    """conv(k x k, no bias) -> spiking neuron -> optional pool, over [T, B, C, H, W]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        neuron: SpikingNeuron,
        bits: int | None = None,
        quantize_membrane: bool = True,
        pool: nn.Module | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.quantizer = MintQuantizer(bits, self.conv.weight) if bits is not None else None
        self.quantize_membrane = quantize_membrane and self.quantizer is not None
        self.neuron = neuron
        self.pool = pool
        self.observer: Optional[Observer] = None

    @property
    def quantized(self) -> bool:
        return self.quantizer is not None

    def weight(self) -> torch.Tensor:
        """The weights the layer computes with: q(w) when quantized, else w."""
        if self.quantizer is None:
            return self.conv.weight
        return self.quantizer(self.conv.weight)

    def weight_levels(self) -> torch.Tensor:
        """Integer weight levels in [-Q, Q] (int8): the device state matrix of this layer."""
        if self.quantizer is None:
            raise ValueError("weight_levels() needs a quantized layer (precision is fp32)")
        return self.quantizer.levels(self.conv.weight)

    def current(self, x: torch.Tensor, time_steps: int, static: bool = False) -> torch.Tensor:
        """Input current [T, B, C', H', W'] = conv(x) for every step."""
        w = self.weight()
        c = self.conv
        if static:
            out = F.conv2d(x, w, None, c.stride, c.padding)
            return out.unsqueeze(0).expand(time_steps, *out.shape)
        t, b = x.shape[:2]
        out = F.conv2d(x.flatten(0, 1), w, None, c.stride, c.padding)
        return out.unflatten(0, (t, b))

    def forward(self, x: torch.Tensor, time_steps: int, static: bool = False) -> torch.Tensor:
        membrane_q = self.quantizer if self.quantize_membrane else None
        spikes = self.neuron(self.current(x, time_steps, static), membrane_q)
        if self.observer is not None:
            self.observer(self, x, spikes)
        if self.pool is None:
            return spikes
        t, b = spikes.shape[:2]
        return self.pool(spikes.flatten(0, 1)).unflatten(0, (t, b))
