"""MINT quantizer (Yin et al., 2023) as used by QUEST, REFERENCE.md section 5.

For b bits, Q = 2^(b-1) - 1 and a learnable scale alpha:

    q(x) = (alpha / Q) * round(Q * clamp(tanh(x) / alpha, -1, 1))

with a straight-through round. The same q and alpha quantize a layer's weights and its membrane
potential (the shared scaling factor), so inference runs on integer levels.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from quest import levels as _levels

ALLOWED_BITS = (2, 3, 4)


def max_level(bits: int) -> int:
    """Q = 2^(b-1) - 1: the largest integer level (2-bit: 1, 3-bit: 3, 4-bit: 7)."""
    if bits not in ALLOWED_BITS:
        raise ValueError(f"precision.bits={bits!r}: allowed {list(ALLOWED_BITS)} or null (fp32)")
    return _levels.max_level(bits)


def mint_quantize(x: torch.Tensor, alpha: torch.Tensor, q_max: int) -> torch.Tensor:
    """q(x) = (alpha/Q) * round_ste(Q * clamp(tanh(x)/alpha, -1, 1))."""
    y = torch.clamp(torch.tanh(x) / alpha, -1.0, 1.0) * q_max
    y = torch.round(y).detach() + (y - y.detach())  # value round(y) exactly, gradient 1
    return y * (alpha / q_max)


# |(2 sigmoid(2x) - 1) - tanh(x)| in float32 is at most 1.8e-7 (all of 4e7 points in [-20, 20] and 1e7
# random ones; ~3e-16 in float64): levels farther than this (scaled by Q / alpha) from a rounding
# boundary cannot differ, the others are recomputed with torch.tanh
_TANH_GAP = 1e-6


def _fast_levels(x: torch.Tensor, out: torch.Tensor) -> bool:
    """Levels through sigmoid: on CPU (torch.tanh costs ~40 plain passes per element there), float32/64,
    contiguous."""
    dense = x.is_contiguous() and out.is_contiguous()
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and dense


def mint_levels_into(
    x: torch.Tensor, alpha: torch.Tensor, q_max: int, out: torch.Tensor, scratch: torch.Tensor | None = None
) -> torch.Tensor:
    """out <- round(Q clamp(tanh(x)/alpha, -1, 1)) as floats, equal to the plain operations (the ones of
    `mint_quantize`, Q = 1 skipping x * 1) element for element. No autograd.

    On CPU: y ~ Q clamp((2 sigmoid(2x) - 1)/alpha, -1, 1) is rounded; where y ~ lies within
    Q (_TANH_GAP / alpha + 2^-20) of a half-integer (a rounding boundary, a handful of elements), the
    level is recomputed with torch.tanh, so every level equals the plain one. `out` and `scratch` (like x,
    distinct from x) receive the result and serve as work buffers."""
    if not _fast_levels(x, out):
        torch.tanh(x, out=out).div_(alpha).clamp_(-1.0, 1.0)
        return (out.mul_(q_max) if q_max != 1 else out).round_()
    scratch = torch.empty_like(x) if scratch is None else scratch
    torch.mul(x, 2.0, out=out).sigmoid_().mul_(2.0).sub_(1.0)  # ~ tanh x
    out.div_(alpha).clamp_(-1.0, 1.0)
    if q_max != 1:
        out.mul_(q_max)
    torch.round(out, out=scratch)
    margin = q_max * (_TANH_GAP / float(alpha) + 2.0**-20)
    torch.ge(out.sub_(scratch).abs_(), 0.5 - margin, out=out)  # 1 where y ~ is near a boundary
    near = torch.nonzero(out.view(-1)).squeeze(1)
    out.copy_(scratch)
    if near.numel():  # the plain operations on those elements
        y = torch.tanh(x.view(-1)[near]).div_(alpha).clamp_(-1.0, 1.0)
        out.view(-1)[near] = (y.mul_(q_max) if q_max != 1 else y).round_()
    return out


def mint_quantize_out(
    x: torch.Tensor, alpha: torch.Tensor, q_max: int, out: torch.Tensor, scratch: torch.Tensor | None = None,
    levels_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """out <- q(x), bit-identical to `mint_quantize`: q(x) = round(...) * (alpha/Q) depends on x only through
    its level (`mint_levels_into`; alpha/Q as alpha when Q = 1). `out` may be x itself; `scratch`, like x,
    is a work buffer; `levels_out` (int8, like x), when given, receives the levels too. No autograd: for
    the fused kernels."""
    levels = torch.empty_like(x) if out.data_ptr() == x.data_ptr() else out
    mint_levels_into(x, alpha, q_max, levels, scratch)
    if levels_out is not None:
        levels_out.copy_(levels)
    if levels is not out:
        out.copy_(levels)
    return out.mul_(alpha / q_max if q_max != 1 else alpha)


def mint_derivatives_(
    tanh: torch.Tensor, alpha: torch.Tensor, q_max: int, scratch: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dq/dx, dq/dalpha) of the straight-through q at x, from tanh(x) (overwritten by dq/dx):

        dq/dx     = 1[|tanh x| <= alpha] (1 - tanh^2 x)
        dq/dalpha = round(Q clamp(tanh(x)/alpha, -1, 1))/Q - 1[|tanh x| <= alpha] tanh(x)/alpha.

    `scratch`, a tensor like tanh, is used as a work buffer when given. No autograd: for the fused kernels."""
    ratio = torch.div(tanh, alpha)
    inside = torch.abs(ratio, out=scratch if scratch is not None else torch.empty_like(ratio)).le_(1.0)
    tanh.mul_(tanh)
    dq_dx = torch.addcmul(inside, inside, tanh, value=-1.0, out=tanh)  # 1[inside] (1 - tanh^2)
    inside.mul_(ratio)  # 1[inside] tanh / alpha
    dq_dalpha = ratio.clamp_(-1.0, 1.0)
    if q_max != 1:
        dq_dalpha.mul_(q_max).round_().div_(q_max)
    else:
        dq_dalpha.round_()
    return dq_dx, dq_dalpha.sub_(inside)


class _MintQuantize(torch.autograd.Function):
    """`mint_quantize` as one autograd node: the same values (the same operations in the same order)
    and the gradients of its straight-through definition (`mint_derivatives_`), saving only x and
    alpha (tanh is recomputed in backward) instead of the plain graph's three weight-sized tensors."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, alpha: torch.Tensor, q_max: int, levels_out: torch.Tensor | None = None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.q_max = q_max
        return mint_quantize_out(x, alpha, q_max, out=torch.empty_like(x), levels_out=levels_out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, alpha = ctx.saved_tensors
        dq_dx, dq_dalpha = mint_derivatives_(torch.tanh(x), alpha, ctx.q_max)
        grad_x = dq_dx.mul_(grad) if ctx.needs_input_grad[0] else None
        grad_alpha = dq_dalpha.mul_(grad).sum().reshape(alpha.shape) if ctx.needs_input_grad[1] else None
        return grad_x, grad_alpha, None, None


def mint_quantize_fused(
    x: torch.Tensor, alpha: torch.Tensor, q_max: int, levels_out: torch.Tensor | None = None
) -> torch.Tensor:
    """`mint_quantize` (the definition) as one autograd node that saves only x and alpha; `levels_out`
    (int8, like x), when given, receives x's levels (`mint_levels`) as a by-product."""
    return _MintQuantize.apply(x, alpha, q_max, levels_out)


def mint_levels(
    x: torch.Tensor, alpha: torch.Tensor, q_max: int, work: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Integer levels round(Q * clamp(tanh(x)/alpha, -1, 1)) in [-Q, Q], as int8 (no gradient).
    `work`: two float tensors like x to compute in (fresh ones otherwise)."""
    with torch.no_grad():
        out, scratch = work if work is not None else (torch.empty_like(x), None)
        return mint_levels_into(x.detach(), alpha.detach(), q_max, out, scratch).to(torch.int8)


class MintQuantizer(nn.Module):
    """One layer's quantizer: `bits` in {2, 3, 4} and a learnable scale alpha.

    alpha starts at 2 * mean(|w|) / sqrt(Q) of the layer's initial weights.
    """

    def __init__(self, bits: int, init_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.bits = bits
        self.q_max = max_level(bits)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        # levels() work buffers, made on first use (the transition monitor reads the levels after every
        # step: fresh weight-sized buffers each time doubled its cost through page faults); not state
        self._level_work: tuple[torch.Tensor, torch.Tensor] | None = None
        if init_weight is not None:
            self.init_alpha(init_weight)

    @torch.no_grad()
    def init_alpha(self, weight: torch.Tensor) -> None:
        """alpha_0 = 2 * mean(|w|) / sqrt(Q)."""
        self.alpha.fill_(2.0 * weight.abs().mean().item() / math.sqrt(self.q_max))

    def scale(self) -> torch.Tensor:
        """alpha, kept strictly positive so that tanh(x)/alpha stays finite."""
        return self.alpha.clamp_min(1e-8)

    @property
    def num_levels(self) -> int:
        """2Q + 1 levels: 3 at 2-bit, 7 at 3-bit, 15 at 4-bit."""
        return _levels.num_levels(self.bits)

    def forward(self, x: torch.Tensor, levels_out: torch.Tensor | None = None) -> torch.Tensor:
        """q(x); `levels_out` (int8, like x), when given, receives x's levels too."""
        return mint_quantize_fused(x, self.scale(), self.q_max, levels_out)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """mint_levels of x (int8), computed in buffers kept for the next call with x's shape."""
        work = self._level_work
        if work is None or work[0].shape != x.shape or work[0].dtype != x.dtype or work[0].device != x.device:
            work = tuple(torch.empty(x.shape, dtype=x.dtype, device=x.device) for _ in range(2))  # type: ignore[assignment]
            self._level_work = work
        return mint_levels(x, self.scale(), self.q_max, work)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, levels={self.num_levels}"
