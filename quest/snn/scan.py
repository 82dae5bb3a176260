"""Kernels of the fused neuron backend: the T-step scan and its backward, outside autograd.

Forward, per step t (U_{-1} = 0), REFERENCE.md sections 4 and 5:

    H_t = x_t + U_{t-1},   S_t = 1[H_t > theta],   U'_t = lambda (H_t - H_t S_t)  (hard)
                                                     U'_t = lambda (H_t - theta S_t) (soft)
    U_t = q(U'_t) = (alpha/Q) round(Q clamp(tanh(U'_t)/alpha, -1, 1))   (quantized layers)

Only H is kept for backward; S, U' and tanh U' are recomputed from it. Backward, t = T-1 .. 0:

    dL/dH_t = dL/dS_t sg_t + dL/dH_{t+1} q'(U'_t) dU'_t/dH_t
    dU'/dH  = lambda (1 - S - H sg)  (hard)   or   lambda (1 - theta sg)  (soft)   [no sg terms
              when the reset is detached],  sg = surrogate(H - theta)
    q'      = 1[|tanh U'| <= alpha] (1 - tanh^2 U'),   dq/dalpha = level/Q - 1[inside] tanh U'/alpha
    dL/dalpha = sum_t dL/dH_{t+1} dq/dalpha(U'_t)

The forward reproduces the reference neuron bit for bit (the same operations in the same order,
in place: per step ~8 passes over one step's tensors, no temporaries). The backward overwrites H
with dL/dH (no second T-sized buffer) and computes tanh U' with torch.tanh, as the reference path
does, so the clamp indicator 1[|tanh U'| <= alpha] is the same in both and their gradients agree to
float rounding (2 sigmoid(2 U') - 1 is cheaper on CPU, but moved dL/dalpha by 2.4e-4 relative in
float32 where tanh U' sits at alpha).

The backward has two implementations of the same equations:
- eager (default): the factors of a chunk of steps (at most _CHUNK_BYTES of temporaries) are
  computed together, then the recurrence runs through the chunk.
- compiled (opt-in: `set_compile(True)` or QUEST_COMPILE=1): one torch.compile kernel, a single
  pass over H and dL/dS. It equals the eager result within float rounding. If torch.compile is
  unavailable or fails, the eager kernel runs instead (with one warning): it is never required.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, NamedTuple

import torch

from quest.snn.quantizer import mint_derivatives_, mint_quantize_out
from quest.snn.surrogate import get_surrogate


class ScanSpec(NamedTuple):
    """Neuron constants of a scan: Q (0 when not quantized), theta, lambda, reset, surrogate, detach."""

    q_max: int
    theta: float
    leak: float
    soft: bool
    surrogate: str
    detach_reset: bool


# -- compile switch ---------------------------------------------------------------------------
_compile: bool = os.environ.get("QUEST_COMPILE", "0").lower() in ("1", "true", "yes", "on")
_compiled: dict[str, Callable[..., Any]] = {}


def set_compile(enabled: bool) -> None:
    """Use the torch.compile kernel for the fused scan's backward (True) or the eager one (False)."""
    global _compile
    _compile = bool(enabled)


def compile_enabled() -> bool:
    return _compile


def _run_compiled(name: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """(True, fn(*args)) through torch.compile, or (False, None) when compiling is off or fails."""
    global _compile
    if not _compile:
        return False, None
    try:
        if name not in _compiled:
            _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
        return True, _compiled[name](*args)
    except Exception as e:  # no compiler, unsupported platform, ...: eager from now on
        _compile = False
        warnings.warn(f"QUEST fused scan: torch.compile failed ({type(e).__name__}: {e}); using eager kernels")
        return False, None


# -- forward ----------------------------------------------------------------------------------
def membrane_reset(
    h: torch.Tensor, s: torch.Tensor, theta: float, leak: float, soft: bool, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The reset, REFERENCE.md section 4: U' = lambda (H - theta S) (soft) or lambda (H - H S) (hard).

    With `out`, written into it without autograd (the fused kernels); without, as plain differentiable
    operations (the reference neuron, the compiled backward). Both give the same values: S is 0 or 1.
    """
    if out is None:
        u = h - theta * s if soft else h - h * s
        return u * leak if leak != 1.0 else u
    if soft:
        torch.add(h, s, alpha=-theta, out=out)
    else:
        torch.addcmul(h, h, s, value=-1.0, out=out)
    return out.mul_(leak) if leak != 1.0 else out


def _reset_into(h: torch.Tensor, s: torch.Tensor, spec: ScanSpec, out: torch.Tensor) -> torch.Tensor:
    """out <- U' (`membrane_reset`) for the scan's spec."""
    return membrane_reset(h, s, spec.theta, spec.leak, spec.soft, out=out)


def scan_forward(
    x: torch.Tensor,
    h: torch.Tensor | None,
    s: torch.Tensor | None,
    alpha: torch.Tensor | None,
    spec: ScanSpec,
    static_steps: int = 0,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> None:
    """Fill h[t] = H_t and s[t] = S_t (0/1) for t = 0..T-1, without autograd; U_{T-1}, which feeds
    nothing, is not computed.

    x is [T, ...], or, with static_steps = T, [...]: the same current at every step. `h` may be `x`
    itself (x is then overwritten by H) or None (H not kept); `s` may be None (S not kept).
    `on_step(t, S_t)` sees every step's spikes, in H's dtype, while they exist. x and s may be in a
    lower precision than h (mixed precision): H_t = x_t + U_{t-1} and S_t are computed in h's dtype
    (x_t widened first, exactly, then added; S_t written to s with one cast, 0 and 1 being exact),
    because CPU kernels that mix dtypes in one operation run several times slower (GPU kernels do not:
    there the mixed operations run as they are, with the same values).
    """
    split = x.device.type == "cpu"  # keep every CPU kernel in one dtype
    steps = static_steps or x.shape[0]
    u = h_t = s_t = None
    u_raw = scratch = None  # step buffers: U' before quantization, the quantizer's work buffer
    for t in range(steps):
        x_t = x if static_steps else x[t]
        h_t = h[t] if h is not None else torch.empty_like(x_t) if h_t is None else h_t
        if s is not None and (s.dtype == h_t.dtype or not split):
            s_t = s[t]
        elif s_t is None:  # a step buffer in H's dtype
            s_t = torch.empty_like(h_t)
        if u is None:
            if h_t.data_ptr() != x_t.data_ptr():
                h_t.copy_(x_t)
        elif x_t.dtype == h_t.dtype or not split:
            torch.add(x_t, u, out=h_t)
        else:  # the same values as add(x_t, u): widening x_t is exact, then the same float add
            h_t.copy_(x_t).add_(u)
        torch.gt(h_t, spec.theta, out=s_t)
        if s is not None and s_t.data_ptr() != s[t].data_ptr():
            s[t].copy_(s_t)
        if on_step is not None:
            on_step(t, s_t)
        if t == steps - 1:
            break
        if alpha is None:
            u = _reset_into(h_t, s_t, spec, torch.empty_like(h_t) if u is None else u)
            continue
        if u is None:
            u, u_raw, scratch = torch.empty_like(h_t), torch.empty_like(h_t), torch.empty_like(h_t)
        mint_quantize_out(_reset_into(h_t, s_t, spec, u_raw), alpha, spec.q_max, out=u, scratch=scratch)


# -- backward ---------------------------------------------------------------------------------
def _surrogate_(z: torch.Tensor, surrogate: str) -> torch.Tensor:
    """z = H - theta <- sg(z) in place (the triangle max(0, 1 - |z|) in 4 passes)."""
    if surrogate == "triangle":
        return z.abs_().sub_(1.0).neg_().clamp_min_(0.0)
    return z.copy_(get_surrogate(surrogate)(z))


_CHUNK_BYTES = 8 * 2**20  # backward temporaries stay this small: a few reusable heap buffers


def _local_factors(
    hp: torch.Tensor, alpha: torch.Tensor | None, spec: ScanSpec
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """For steps whose U feeds the next step: (dU_t/dH_t, dq/dalpha(U'_t), sg(H_t - theta)), from H only
    (the surrogate is returned for the dL/dS_t term, so it is computed once)."""
    theta, leak = spec.theta, spec.leak
    a = torch.le(hp, theta, out=torch.empty_like(hp))  # 1 - S
    u = None
    if alpha is not None:  # U' = reset(H, S), in S's buffer
        u = torch.gt(hp, theta, out=torch.empty_like(hp))
        _reset_into(hp, u, spec, out=u)
    sg = _surrogate_(torch.sub(hp, theta), spec.surrogate)
    if spec.soft:  # lambda (1 - theta sg)
        if spec.detach_reset:
            a.fill_(leak)
        else:
            torch.mul(sg, -leak * theta, out=a).add_(leak)
    else:  # lambda (1 - S - H sg)
        if not spec.detach_reset:
            a.addcmul_(hp, sg, value=-1.0)
        if leak != 1.0:
            a.mul_(leak)
    if u is None:
        return a, None, sg
    # torch.tanh, as the reference path: another formula (2 sigmoid(2u) - 1) can put tanh(U') on the
    # other side of alpha in the clamp's indicator and move dL/dalpha by far more than rounding
    dq_du, dq_dalpha = mint_derivatives_(u.tanh_(), alpha, spec.q_max)
    return a.mul_(dq_du), dq_dalpha, sg


GradS = Callable[[int, int], torch.Tensor]  # (start, end) -> dL/dS_t for t in [start, end)


def _backward_eager_(
    h: torch.Tensor, grad_s: GradS, alpha: torch.Tensor | None, spec: ScanSpec
) -> torch.Tensor | None:
    """Steps t = T-1 .. 0 in chunks of k steps (k * step size <= _CHUNK_BYTES): the local factors of a
    chunk are computed together, then the recurrence runs through it, writing dL/dH_t over H_t."""
    steps = h.shape[0]
    grad_alpha = torch.zeros((), dtype=h.dtype, device=h.device) if alpha is not None else None
    k = max(1, _CHUNK_BYTES // max(1, h[0].numel() * h.element_size()))
    _surrogate_(h[-1:].sub_(spec.theta), spec.surrogate).mul_(grad_s(steps - 1, steps))  # dL/dH_{T-1}
    end = steps - 1  # steps [start, end) feed the next step
    while end > 0:
        start = max(0, end - k)
        a, dq_dalpha, sg = _local_factors(h[start:end], alpha, spec)
        g = torch.mul(sg, grad_s(start, end), out=h[start:end])  # H of these steps is no longer needed
        for t in range(end - start - 1, -1, -1):
            g[t].addcmul_(h[start + t + 1], a[t])
        if dq_dalpha is not None:  # sum_t dL/dH_{t+1} dq/dalpha_t
            g_next = h[start + 1 : end + 1]
            if g_next.is_contiguous() and dq_dalpha.is_contiguous():
                grad_alpha += torch.dot(g_next.reshape(-1), dq_dalpha.reshape(-1))
            else:  # e.g. channels_last: no flattening copies
                grad_alpha += dq_dalpha.mul_(g_next).sum()
        end = start
    return grad_alpha


def _backward_kernel(
    h: torch.Tensor,
    grad_s: torch.Tensor,
    alpha: torch.Tensor,
    q_max: int,
    theta: float,
    leak: float,
    soft: bool,
    surrogate: str,
    detach_reset: bool,
) -> torch.Tensor:
    """The whole backward as one pointwise pass (compiled): h <- dL/dH; returns dL/dalpha."""
    sg_fn = get_surrogate(surrogate)
    grads: list[torch.Tensor] = []
    g_next: torch.Tensor | None = None
    grad_alpha = torch.zeros((), dtype=h.dtype, device=h.device)
    for t in range(h.shape[0] - 1, -1, -1):
        ht = h[t]
        sg = sg_fn(ht - theta)
        g = grad_s[t] * sg
        if g_next is not None:
            s = (ht > theta).to(ht.dtype)
            if soft:
                du = leak * (1.0 - theta * sg) if not detach_reset else torch.full_like(ht, leak)
            else:
                du = leak * ((1.0 - s) - ht * sg) if not detach_reset else leak * (1.0 - s)
            if q_max:
                u = membrane_reset(ht, s, theta, leak, soft)
                dq_du, dq_dalpha = mint_derivatives_(torch.tanh(u), alpha, q_max)
                grad_alpha = grad_alpha + (g_next * dq_dalpha).sum()
                du = du * dq_du
            g = g + g_next * du
        grads.append(g)
        g_next = g
    grads.reverse()
    h.copy_(torch.stack(grads))
    return grad_alpha


def _flat(t: torch.Tensor, lead: int) -> torch.Tensor | None:
    """t as [t.shape[:lead], N] over the same memory when its last dims fill one dense block (any
    dimension order, e.g. channels_last); None otherwise. The alias is made with `set_`, not as a
    view, so torch.compile sees a plain tensor (no view-base guards, no recompiles per layer)."""
    expected = 1
    for d in sorted(range(lead, t.dim()), key=t.stride):
        if t.size(d) != 1 and t.stride(d) != expected:
            return None
        expected *= t.size(d)
    size, stride = (*t.shape[:lead], expected), (*t.stride()[:lead], 1)
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage(), t.storage_offset(), size, stride)


def scan_backward_(
    h: torch.Tensor, grad_s: torch.Tensor | GradS, alpha: torch.Tensor | None, spec: ScanSpec
) -> torch.Tensor | None:
    """Overwrite h (the saved H) with dL/dH = dL/dx; return dL/dalpha (None when not quantized).

    grad_s is dL/dS [T, ...], or a function (start, end) -> dL/dS for those steps, so that it can be
    produced a chunk at a time (e.g. by a max pool's backward).
    """
    grad_of = grad_s if callable(grad_s) else (lambda start, end: grad_s[start:end])
    if _compile:
        full = grad_of(0, h.shape[0])
        if full.stride() != h.stride():
            full = torch.empty_like(h).copy_(full)
        h_flat, g_flat = _flat(h, 1), _flat(full, 1)
        if h_flat is not None and g_flat is not None:
            a = alpha if alpha is not None else torch.ones((), dtype=h.dtype, device=h.device)
            ok, grad_alpha = _run_compiled(
                "backward", _backward_kernel, h_flat, g_flat, a, spec.q_max if alpha is not None else 0,
                spec.theta, spec.leak, spec.soft, spec.surrogate, spec.detach_reset,
            )  # fmt: skip
            if ok:
                return grad_alpha if alpha is not None else None
    return _backward_eager_(h, grad_of, alpha, spec)


def release_once(ctx: Any) -> None:
    """The fused backward overwrites its saved H: a second backward through the node must fail loudly."""
    if getattr(ctx, "released", False):
        raise RuntimeError(
            "backward through a fused spiking layer ran twice (retain_graph=True); its backward reuses "
            "the saved membrane in place. Use neuron.backend='reference' to backpropagate twice."
        )
    ctx.released = True
