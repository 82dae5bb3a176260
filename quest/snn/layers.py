"""A spiking conv layer: conv -> neuron scan over T (-> pool), optionally MINT-quantized.

Execution is layer by layer over all T steps: the conv runs once on the T*B inputs (or once on
the B images when the input is static, as with direct encoding), then the neuron scans T.
A quantized layer quantizes its weights once per forward, and its neuron quantizes the membrane
with the same quantizer (shared alpha).

With the neuron backend "fused" (default) the conv, the scan and a following max pool are one
autograd node (quest/snn/conv.py): spike inputs are saved as bool, H is written over the current,
spikes are pooled as the scan makes them and only the pool indices are saved. (With an observer
attached, which needs the spikes before pooling, the pool runs separately, saving only indices.)
The backend "reference" runs the plain `current` + per-step neuron + pool, the definition the fused
path is tested against (tests/test_fast_paths.py).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from quest.snn.conv import max_pool2d_indices, spiking_conv_scan
from quest.snn.integer_inference import integer_scan
from quest.snn.neurons import SpikingNeuron
from quest.snn.quantizer import MintQuantizer

# observer(layer, input, spikes): input [T, B, C, H, W] (or [B, C, H, W] when static), spikes
# [T, B, C', H', W'] before pooling. Set by the activity monitor on the batches it measures.
Observer = Callable[["SpikingConv", torch.Tensor, torch.Tensor], None]


def _plain_max_pool(pool: nn.Module | None) -> bool:
    """A MaxPool2d without padding, dilation, ceil mode or indices: the fused paths compute it."""
    return (
        type(pool) is nn.MaxPool2d
        and pool.padding in (0, (0, 0))
        and pool.dilation in (1, (1, 1))
        and not pool.ceil_mode
        and not pool.return_indices
    )


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
        spike_input: bool | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.quantizer = MintQuantizer(bits, self.conv.weight) if bits is not None else None
        self.quantize_membrane = quantize_membrane and self.quantizer is not None
        self.neuron = neuron
        self.pool = pool
        self.observer: Optional[Observer] = None
        # Whether non-static inputs are spikes (0/1), which lets the fused path keep them as bool.
        # None: yes, as for every SpikingConv that QUEST builds (inputs are spikes of the layer before
        # or of a spike encoder; only the static direct-encoding input is real-valued).
        self.spike_input = spike_input
        # Set by the transition monitor: every weight() then also keeps the weight levels it computed
        # (`kept_levels`, int8), so the monitor reads them instead of computing them again.
        self.keep_levels = False
        self.kept_levels: torch.Tensor | None = None

    @property
    def quantized(self) -> bool:
        return self.quantizer is not None

    def weight(self) -> torch.Tensor:
        """The weights the layer computes with: q(w) when quantized, else w."""
        if self.quantizer is None:
            return self.conv.weight
        if not self.keep_levels:
            return self.quantizer(self.conv.weight)
        w = self.conv.weight
        self.kept_levels = torch.empty(w.shape, dtype=torch.int8, device=w.device)
        return self.quantizer(w, levels_out=self.kept_levels)

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

    @torch.no_grad()
    def integer_forward(self, spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer-only inference on binary input spikes [T, B, C, H, W] (before pooling).

        Returns (spikes, integer membrane levels); see quest/snn/integer_inference.py.
        """
        if self.quantizer is None or not self.quantize_membrane:
            raise ValueError("integer_forward() needs quantized weights and membrane")
        levels = self.weight_levels().to(torch.float64)
        t, b = spikes.shape[:2]
        c = self.conv
        current = F.conv2d(spikes.flatten(0, 1).to(torch.float64), levels, None, c.stride, c.padding)
        current = current.round().to(torch.int64).unflatten(0, (t, b))  # exact: sums of integers
        return integer_scan(
            current,
            self.neuron.theta,
            self.neuron.leak,
            self.neuron.soft_reset,
            float(self.quantizer.scale()),
            self.quantizer.q_max,
        )

    def forward(self, x: torch.Tensor, time_steps: int, static: bool = False) -> torch.Tensor:
        membrane_q = self.quantizer if self.quantize_membrane else None
        fused = self.neuron.backend == "fused"
        if not fused:  # the definition
            spikes = self.neuron(self.current(x, time_steps, static), membrane_q)
        elif self.observer is None and _plain_max_pool(self.pool):  # conv, scan and pool: one node
            return self._fused_spikes(x, time_steps, static, membrane_q, pool=True)
        else:  # conv and scan: one node
            spikes = self._fused_spikes(x, time_steps, static, membrane_q)
        if self.observer is not None:
            self.observer(self, x, spikes)
        if self.pool is None:
            return spikes
        t, b = spikes.shape[:2]
        flat = spikes.flatten(0, 1)
        if fused and _plain_max_pool(self.pool):
            pooled = max_pool2d_indices(flat, self.pool.kernel_size, self.pool.stride)
        else:
            pooled = self.pool(flat)
        return pooled.unflatten(0, (t, b))

    def _fused_spikes(
        self, x: torch.Tensor, time_steps: int, static: bool, membrane_q: MintQuantizer | None, pool: bool = False
    ) -> torch.Tensor:
        """neuron(current(x)) (then the max pool, with `pool`) by `spiking_conv_scan`: spike inputs
        saved as bool, H written over the current."""
        c, n = self.conv, self.neuron
        binary = not static if self.spike_input is None else self.spike_input
        return spiking_conv_scan(
            x,
            self.weight(),
            membrane_q.scale() if membrane_q is not None else None,
            membrane_q.q_max if membrane_q is not None else 0,
            (c.stride, c.padding, c.dilation, c.groups),
            (n.theta, n.leak, n.soft_reset, n.surrogate, n.detach_reset),
            time_steps,
            static,
            binary_input=binary,
            pool=(self.pool.kernel_size, self.pool.stride or self.pool.kernel_size) if pool else None,
        )
