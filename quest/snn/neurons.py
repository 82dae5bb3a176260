"""Spiking neurons, REFERENCE.md section 4, one class per model.

Per time step t, with input current x_t, membrane U, threshold theta and leak lambda:

    H_t = x_t + U_{t-1}
    S_t = 1[H_t > theta]
    hard reset: U_t = lambda * H_t * (1 - S_t)
    soft reset: U_t = lambda * (H_t - theta * S_t)

and, when the layer is quantized, U_t <- q(U_t) with the layer's MINT quantizer (shared alpha).
IF: lambda = 1; LIF: lambda = 0.5 by default.

A neuron takes the whole sequence x of shape [T, B, ...] and returns spikes of the same shape.
Two backends give the same spikes and the same gradients:
- "fused" (default): one autograd function scans all T steps and stores only H (one tensor);
  backward recomputes spikes, resets and quantizer derivatives from it (kernels in
  quest/snn/scan.py; in a SpikingConv the conv joins the same node, quest/snn/conv.py).
- "reference": a plain loop of `step` under autograd, the readable definition the fused
  backend is tested against.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from quest.snn.quantizer import MintQuantizer
from quest.snn.scan import ScanSpec, release_once, scan_backward_, scan_forward
from quest.snn.surrogate import get_surrogate

BACKENDS = ("fused", "reference")


class SpikeFunction(torch.autograd.Function):
    """S = 1[z > 0] forward; dS/dz = surrogate(z) backward (z = H - theta)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, surrogate: str) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.surrogate = surrogate
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad_s: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        return grad_s * get_surrogate(ctx.surrogate)(z), None


def _reset(h: torch.Tensor, s: torch.Tensor, theta: float, leak: float, soft: bool) -> torch.Tensor:
    """Pre-quantization membrane: lambda (H - theta S) (soft) or lambda H (1 - S) (hard)."""
    if soft:
        return leak * (h - theta * s)
    return leak * h * (1.0 - s)


class _FusedScan(torch.autograd.Function):
    """All T steps of one neuron layer in one autograd node; saves H only (quest/snn/scan.py)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        alpha: torch.Tensor | None,
        q_max: int,
        theta: float,
        leak: float,
        soft: bool,
        surrogate: str,
        detach_reset: bool,
    ) -> torch.Tensor:
        h = torch.empty_like(x, memory_format=torch.contiguous_format) if x.stride(0) == 0 else torch.empty_like(x)
        spikes = torch.empty_like(h)
        spec = ScanSpec(q_max, theta, leak, soft, surrogate, detach_reset)
        scan_forward(x, h, spikes, alpha, spec)
        ctx.save_for_backward(h, alpha if alpha is not None else torch.empty(0))
        ctx.spec, ctx.quantized = spec, alpha is not None
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_s: torch.Tensor) -> tuple[Any, ...]:
        release_once(ctx)
        h, alpha = ctx.saved_tensors
        grad_alpha = scan_backward_(h, grad_s, alpha if ctx.quantized else None, ctx.spec)  # h <- dL/dx
        return h, grad_alpha if ctx.needs_input_grad[1] else None, None, None, None, None, None, None


class SpikingNeuron(nn.Module):
    """Multi-step neuron: forward([T, B, ...] currents) -> [T, B, ...] spikes (0/1 floats)."""

    soft_reset: bool = False
    default_leak: float = 1.0

    def __init__(
        self,
        theta: float = 0.5,
        leak: float | None = None,
        surrogate: str = "triangle",
        detach_reset: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__()
        get_surrogate(surrogate)  # validates the name
        if backend not in BACKENDS:
            raise ValueError(f"neuron.backend={backend!r}: allowed {list(BACKENDS)}")
        if not theta > 0:
            raise ValueError(f"neuron.theta={theta!r}: must be > 0")
        self.theta = float(theta)
        self.leak = float(self.default_leak if leak is None else leak)
        if not 0.0 < self.leak <= 1.0:
            raise ValueError(f"neuron.leak={leak!r}: must be in (0, 1]")
        if self.default_leak == 1.0 and self.leak != 1.0:
            raise ValueError(f"neuron.leak={leak!r}: IF neurons have leak 1; use lif_hard or lif_soft")
        self.surrogate = surrogate
        self.detach_reset = detach_reset
        self.backend = backend

    @property
    def is_leaky(self) -> bool:
        return self.leak < 1.0

    def step(
        self, x_t: torch.Tensor, u_prev: torch.Tensor, quantizer: MintQuantizer | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step (reference definition): returns (S_t, U_t)."""
        h = x_t + u_prev
        s = SpikeFunction.apply(h - self.theta, self.surrogate)
        s_reset = s.detach() if self.detach_reset else s
        u = _reset(h, s_reset, self.theta, self.leak, self.soft_reset)
        if quantizer is not None:
            u = quantizer(u)
        return s, u

    def forward(self, x: torch.Tensor, quantizer: MintQuantizer | None = None) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):  # mixed precision: the scan and quantizer stay fp32
            x = x.float()
        if self.backend == "reference":
            u = torch.zeros_like(x[0])
            spikes = []
            for t in range(x.shape[0]):
                s, u = self.step(x[t], u, quantizer)
                spikes.append(s)
            return torch.stack(spikes)
        alpha = quantizer.scale() if quantizer is not None else None
        q_max = quantizer.q_max if quantizer is not None else 0
        return _FusedScan.apply(
            x, alpha, q_max, self.theta, self.leak, self.soft_reset, self.surrogate, self.detach_reset
        )

    def extra_repr(self) -> str:
        reset = "soft" if self.soft_reset else "hard"
        return f"theta={self.theta}, leak={self.leak}, reset={reset}, surrogate={self.surrogate}, backend={self.backend}"


class IFHard(SpikingNeuron):
    """Integrate-and-fire, hard reset: U_t = H_t (1 - S_t)."""

    soft_reset = False
    default_leak = 1.0


class IFSoft(SpikingNeuron):
    """Integrate-and-fire, soft reset: U_t = H_t - theta S_t."""

    soft_reset = True
    default_leak = 1.0


class LIFHard(SpikingNeuron):
    """Leaky integrate-and-fire, hard reset: U_t = lambda H_t (1 - S_t), lambda = 0.5 by default."""

    soft_reset = False
    default_leak = 0.5


class LIFSoft(SpikingNeuron):
    """Leaky integrate-and-fire, soft reset: U_t = lambda (H_t - theta S_t), lambda = 0.5 by default."""

    soft_reset = True
    default_leak = 0.5


NEURONS: dict[str, type[SpikingNeuron]] = {
    "if_hard": IFHard,
    "if_soft": IFSoft,
    "lif_hard": LIFHard,
    "lif_soft": LIFSoft,
}


def neuron_leak(spec: Mapping[str, Any]) -> float:
    """The leak lambda a neuron config gives its neurons: `leak`, or the model's default when it is
    absent or null (IF 1, LIF 0.5). The model and the device mapping both read it here."""
    name = spec.get("name")
    if name not in NEURONS:
        raise ValueError(f"neuron.name={name!r}: allowed {sorted(NEURONS)}")
    leak = spec.get("leak")
    return float(NEURONS[name].default_leak if leak is None else leak)
