"""The spiking neuron, REFERENCE.md section 4: one model whose reset and leak are parameters.

Per time step t, with input current x_t, membrane U, threshold theta and leak lambda:

    H_t = x_t + U_{t-1}
    S_t = 1[H_t > theta]
    hard reset: U_t = lambda * H_t * (1 - S_t)
    soft reset: U_t = lambda * (H_t - theta * S_t)          (quest.snn.scan.membrane_reset)

and, when the layer is quantized, U_t <- q(U_t) with the layer's MINT quantizer (shared alpha).
The four configs (conf/neuron) are presets: IF (lambda = 1) and LIF (lambda = 0.5 by default), each
with a hard or a soft reset.

A neuron takes the whole sequence x of shape [T, B, ...] and returns spikes of the same shape.
Two backends give the same spikes and the same gradients:
- "fused" (default): one autograd function scans all T steps and stores only H (one tensor);
  backward recomputes spikes, resets and quantizer derivatives from it (kernels in
  quest/snn/scan.py; in a SpikingConv the conv joins the same node, quest/snn/conv.py).
- "reference": a plain loop of `step` under autograd, the readable definition the fused
  backend is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from quest.snn.quantizer import MintQuantizer
from quest.snn.scan import ScanSpec, membrane_reset, release_once, scan_backward_, scan_forward
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


RESETS = ("hard", "soft")


class SpikingNeuron(nn.Module):
    """Multi-step neuron: forward([T, B, ...] currents) -> [T, B, ...] spikes (0/1 floats)."""

    def __init__(
        self,
        theta: float = 0.5,
        leak: float = 1.0,
        reset: str = "hard",
        surrogate: str = "triangle",
        detach_reset: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__()
        get_surrogate(surrogate)  # validates the name
        if backend not in BACKENDS:
            raise ValueError(f"neuron.backend={backend!r}: allowed {list(BACKENDS)}")
        if reset not in RESETS:
            raise ValueError(f"neuron.reset={reset!r}: allowed {list(RESETS)}")
        if not theta > 0:
            raise ValueError(f"neuron.theta={theta!r}: must be > 0")
        self.theta = float(theta)
        self.leak = float(leak)
        if not 0.0 < self.leak <= 1.0:
            raise ValueError(f"neuron.leak={leak!r}: must be in (0, 1]")
        self.reset = reset
        self.surrogate = surrogate
        self.detach_reset = detach_reset
        self.backend = backend

    @property
    def soft_reset(self) -> bool:
        return self.reset == "soft"

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
        u = membrane_reset(h, s_reset, self.theta, self.leak, self.soft_reset)
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
        return f"theta={self.theta}, leak={self.leak}, reset={self.reset}, surrogate={self.surrogate}, backend={self.backend}"


@dataclass(frozen=True)
class NeuronPreset:
    """A named neuron model (conf/neuron/<name>.yaml): its reset and default leak."""

    reset: str
    leak: float

    def __call__(self, leak: float | None = None, **kwargs: Any) -> SpikingNeuron:
        """The neuron, with `leak` (None: the preset's); IF presets allow only leak 1."""
        if self.leak == 1.0 and leak not in (None, 1.0):
            raise ValueError(f"neuron.leak={leak!r}: IF neurons have leak 1; use lif_hard or lif_soft")
        return SpikingNeuron(leak=self.leak if leak is None else leak, reset=self.reset, **kwargs)


NEURONS: dict[str, NeuronPreset] = {
    "if_hard": NeuronPreset("hard", 1.0),  # U_t = H_t (1 - S_t)
    "if_soft": NeuronPreset("soft", 1.0),  # U_t = H_t - theta S_t
    "lif_hard": NeuronPreset("hard", 0.5),  # U_t = lambda H_t (1 - S_t)
    "lif_soft": NeuronPreset("soft", 0.5),  # U_t = lambda (H_t - theta S_t)
}


def neuron_leak(spec: Mapping[str, Any]) -> float:
    """The leak lambda a neuron config gives its neurons: `leak`, or the model's default when it is
    absent or null (IF 1, LIF 0.5). The model and the device mapping both read it here."""
    name = spec.get("name")
    if name not in NEURONS:
        raise ValueError(f"neuron.name={name!r}: allowed {sorted(NEURONS)}")
    leak = spec.get("leak")
    return float(NEURONS[name].leak if leak is None else leak)
