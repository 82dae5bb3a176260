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
  backward recomputes spikes, resets and quantizer derivatives from it.
- "reference": a plain loop of `step` under autograd, the readable definition the fused
  backend is tested against.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quest.snn.quantizer import MintQuantizer
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
    """All T steps of one neuron layer in one autograd node; saves H only."""

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
        h_all = torch.empty_like(x)
        u = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            h = torch.add(x[t], u, out=h_all[t])
            s = (h > theta).to(x.dtype)
            u = _reset(h, s, theta, leak, soft)
            if alpha is not None:
                u = torch.round(torch.clamp(torch.tanh(u) / alpha, -1.0, 1.0) * q_max) * (alpha / q_max)
        ctx.save_for_backward(h_all, alpha if alpha is not None else torch.empty(0))
        ctx.cfg = (alpha is not None, q_max, theta, leak, soft, surrogate, detach_reset)
        return (h_all > theta).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_s: torch.Tensor) -> tuple[Any, ...]:
        h_all, alpha = ctx.saved_tensors
        quantized, q_max, theta, leak, soft, surrogate, detach_reset = ctx.cfg
        sg_fn = get_surrogate(surrogate)
        grad_x = torch.empty_like(h_all)
        grad_alpha = torch.zeros((), dtype=h_all.dtype, device=h_all.device) if quantized else None
        grad_h_next: torch.Tensor | None = None  # dL/dH_{t+1} = dL/dU_t
        for t in range(h_all.shape[0] - 1, -1, -1):
            h = h_all[t]
            s = (h > theta).to(h.dtype)
            if grad_h_next is None:
                grad_pre = None  # U_{T-1} feeds nothing
            elif quantized:
                tanh_u = torch.tanh(_reset(h, s, theta, leak, soft))
                ratio = tanh_u / alpha
                inside = (ratio.abs() <= 1.0).to(h.dtype)
                # dq/dU' = (1 - tanh^2 U') * 1[|tanh U'| <= alpha]
                grad_pre = grad_h_next * (1.0 - tanh_u * tanh_u) * inside
                # dq/dalpha = round(Q clamp(.))/Q - 1[inside] * tanh U' / alpha
                levels = torch.round(torch.clamp(ratio, -1.0, 1.0) * q_max)
                grad_alpha += (grad_h_next * (levels / q_max - inside * ratio)).sum()
            else:
                grad_pre = grad_h_next
            grad_spike = grad_s[t]
            if grad_pre is None:
                grad_h = grad_spike * sg_fn(h - theta)
            else:
                if soft:
                    grad_h = grad_pre * leak
                    reset_grad = grad_pre * (-leak * theta)
                else:
                    grad_h = grad_pre * (leak * (1.0 - s))
                    reset_grad = grad_pre * (-leak) * h
                if not detach_reset:
                    grad_spike = grad_spike + reset_grad
                grad_h = grad_h + grad_spike * sg_fn(h - theta)
            grad_x[t] = grad_h
            grad_h_next = grad_h
        if grad_alpha is not None and not ctx.needs_input_grad[1]:
            grad_alpha = None
        return grad_x, grad_alpha, None, None, None, None, None, None


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
