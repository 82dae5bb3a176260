"""Fast paths of a spiking conv layer: less memory, fewer passes, the same numbers.

- `spiking_conv_scan`: conv + neuron scan over T in one autograd node. Forward: I = conv(x, w) on
  the T*B inputs (or once on B static images), then H_t = I_t + U_{t-1} is written over I in place
  and S_t = 1[H_t > theta] (quest/snn/scan.py). It saves x as bool when x is spikes (1 byte
  instead of 4), w, H and alpha; backward overwrites H with dL/dI, then runs the conv backward with
  x recast to float (on CPU one time step at a time: smaller float copies and oneDNN workspaces).
  A following max pool joins the node too: spikes are pooled one step at a time as the scan makes
  them (the full-resolution spike tensor is never built) and only the argmax indices are saved.
  Mixed precision (torch.autocast, as Lightning's `trainer.precision=bf16-mixed` sets it): the
  convs, forward and backward, run in the autocast dtype, exactly as autocast runs F.conv2d on the
  reference path; the scan adds the 16-bit current into an fp32 H, so H, U and the MINT membrane
  quantizer stay fp32 (its round/clamp is never done in 16 bits), and the spikes, exactly 0 or 1,
  come out in the autocast dtype, ready for the next conv.
- `max_pool2d_indices`: max pool whose autograd saves only the argmax indices (not its input).

The plain path (neuron backend "reference", F.conv2d, nn.MaxPool2d) is the definition these are
tested against in tests/test_fast_paths.py.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from quest.snn.scan import ScanSpec, release_once, scan_backward_, scan_forward

_Pair = tuple[int, int]


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype convs run in under torch.autocast on this device type, or None outside autocast."""
    kind = device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def _conv(
    x: torch.Tensor, weight: torch.Tensor, conv: tuple[_Pair, _Pair, _Pair, int], dtype: torch.dtype | None
) -> torch.Tensor:
    """conv2d(x, w) (no bias), in `dtype` under mixed precision (the result stays in `dtype`)."""
    if dtype is None:
        return F.conv2d(x, weight, None, *conv)
    with torch.autocast(x.device.type, enabled=False):
        return F.conv2d(x.to(dtype), weight.to(dtype), None, *conv)


def as_float(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x in `dtype`; a bool tensor (saved spikes) is read as its 0/1 bytes, which CPU kernels convert
    several times faster than bool (the same values)."""
    return (x.view(torch.uint8) if x.dtype == torch.bool else x).to(dtype)


def _conv_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: _Pair,
    padding: _Pair,
    dilation: _Pair,
    groups: int,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dL/dx, dL/dw) of y = conv2d(x, w) (no bias), in w's dtype (grad_out and x are cast to it)."""
    gx, gw, _ = torch.ops.aten.convolution_backward(
        grad_out.to(weight.dtype), as_float(x, weight.dtype), weight, None, stride, padding, dilation, False, [0, 0],
        groups, [needs[0], needs[1], False],
    )  # fmt: skip
    return gx, gw


def _like_current(
    current: torch.Tensor, time_steps: int, shape: torch.Size | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An empty [T, *shape] tensor (shape: the current's [B, ...] by default) in its memory format."""
    fmt = torch.channels_last if _is_channels_last(current) else torch.contiguous_format
    b, *rest = shape if shape is not None else current.shape
    return torch.empty(
        (time_steps * b, *rest), dtype=dtype or current.dtype, device=current.device, memory_format=fmt
    ).unflatten(0, (time_steps, b))


def _conv_scan_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    alpha: torch.Tensor | None,
    conv: tuple[_Pair, _Pair, _Pair, int],
    time_steps: int,
    static: bool,
    spec: ScanSpec,
    pool: _Pair | None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(spikes, H or, when static, the current [B, ...], pool indices or None, the weight the conv
    used: w, or w cast to `dtype`).

    With pool = (kernel, stride) the spikes come out max-pooled, one step at a time: the full
    [T, B, C', H', W'] spike tensor is never built. dtype: the conv's dtype under mixed precision.
    """
    state = weight.dtype  # H, U and the quantizer: the parameters' dtype, also under autocast
    out = dtype or state  # spikes (0/1, exact in any float dtype): the conv dtype, ready for the next conv
    weight = weight if dtype is None else weight.to(dtype)  # cast once (the backward reuses it)
    if static:  # x [B, C, H, W]: the same current at every step; H is recomputed in backward
        current = _conv(x, weight, conv, dtype).to(state)
        h, like, steps = current, current, time_steps
    else:  # x [T, B, C, H, W]: conv once on the T*B inputs, H written over the current (or, under
        # mixed precision, into an fp32 buffer: the cast fused into the scan's first add)
        t, b = x.shape[:2]
        current = _conv(x.flatten(0, 1), weight, conv, dtype).unflatten(0, (t, b))
        h = current if current.dtype == state else torch.empty_like(current, dtype=state)
        like, steps = h[0], 0
    if pool is None:
        spikes = _like_current(like, time_steps, dtype=out)
        scan_forward(current, None if static else h, spikes, alpha, spec, static_steps=steps)
        return spikes, h, None, weight
    probe = F.max_pool2d(like[:1], pool[0], pool[1])  # the pooled shape of one image
    pooled = _like_current(like, time_steps, torch.Size((like.shape[0], *probe.shape[1:])), dtype=out)
    idx = torch.empty_like(pooled, dtype=torch.int64)
    # the scan's spikes are in H's dtype: pool them there (equal 0/1 values, equal argmax), then cast
    step_out = pooled[0] if out == state else torch.empty_like(pooled[0], dtype=state)

    def pool_step(t: int, s_t: torch.Tensor) -> None:
        dest = pooled[t] if out == state else step_out
        torch.ops.aten.max_pool2d_with_indices.out(s_t, pool[0], pool[1], 0, 1, False, out=dest, indices=idx[t])
        if out != state:
            pooled[t].copy_(step_out)

    scan_forward(current, None if static else h, None, alpha, spec, static_steps=steps, on_step=pool_step)
    return pooled, h, idx, weight


def _pool_grad(grad_y: torch.Tensor, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Backward of max pooling: dL/dy scattered to the argmax indices of each plane, in a tensor
    shaped and laid out like the pool's input `like`."""
    grad_x = torch.zeros_like(like, dtype=grad_y.dtype).flatten(-2)  # a view, or a copy if it must be
    grad_x.scatter_add_(-1, idx.flatten(-2), grad_y.flatten(-2))
    return grad_x.unflatten(-1, like.shape[-2:])


class _SpikingConvScan(torch.autograd.Function):
    """Spikes [T, B, C', H', W'] (max-pooled when `pool`) = neuron scan of conv(x, w), one node.

    Saves x as bool (when binary), w, H (or the static current), alpha and the pool indices.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        alpha: torch.Tensor | None,
        conv: tuple[_Pair, _Pair, _Pair, int],
        time_steps: int,
        static: bool,
        binary_input: bool,
        spec: ScanSpec,
        pool: _Pair | None,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        spikes, h, idx, conv_weight = _conv_scan_forward(x, weight, alpha, conv, time_steps, static, spec, pool, dtype)
        saved_x = x.to(torch.bool) if binary_input and not static else x  # x != 0; to(bool) is the fast kernel
        empty = torch.empty(0)
        ctx.save_for_backward(
            saved_x, conv_weight, h, alpha if alpha is not None else empty, idx if idx is not None else empty
        )
        ctx.cfg = (conv, static, alpha is not None, spec, pool is not None, dtype, x.dtype, weight.dtype)
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        release_once(ctx)
        x, w, h, alpha, idx = ctx.saved_tensors  # w: the weight as the conv used it (in `dtype`)
        conv, static, quantized, spec, pooled, dtype, x_dtype, w_dtype = ctx.cfg
        alpha = alpha if quantized else None
        steps = grad_out.shape[0]
        if static:  # recompute H from the saved current (the same operations: the same values)
            current, h = h, _like_current(h, steps)
            scan_forward(current, h, None, alpha, spec, static_steps=steps)
        # dL/dS a chunk of steps at a time, in H's dtype (widening a 16-bit gradient is exact, and the
        # scan's products then do not mix dtypes); pooled: from the pooled gradient and the indices
        if pooled:
            grad_s: Any = lambda a, b: _pool_grad(grad_out[a:b].to(h.dtype), idx[a:b], h[a:b])  # noqa: E731
        elif grad_out.dtype != h.dtype:
            grad_s = lambda a, b: grad_out[a:b].to(h.dtype)  # noqa: E731
        else:
            grad_s = grad_out
        grad_alpha = scan_backward_(h, grad_s, alpha, spec)  # h <- dL/dcurrent
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        if static:
            gx, gw = _conv_backward(h.sum(0), x, w, *conv, needs=needs)
        elif h.device.type == "cpu":  # one step at a time: smaller copies of x and dL/dI, smaller workspaces
            gx = torch.empty_like(x, dtype=x_dtype) if needs[0] else None
            gw = None
            for t in range(steps):
                gx_t, gw_t = _conv_backward(h[t], x[t], w, *conv, needs=needs)
                if gx is not None:
                    gx[t].copy_(gx_t)
                if gw_t is not None:  # None when the weight is frozen
                    gw = gw_t.to(w_dtype) if gw is None else gw.add_(gw_t)
        else:
            gx, gw = _conv_backward(h.flatten(0, 1), x.flatten(0, 1), w, *conv, needs=needs)
            if gx is not None:
                gx = gx.unflatten(0, h.shape[:2])
        gx = gx.to(x_dtype) if gx is not None else None
        gw = gw.to(w_dtype) if gw is not None else None
        grad_alpha = grad_alpha if ctx.needs_input_grad[2] else None
        return gx, gw, grad_alpha, None, None, None, None, None, None, None


def spiking_conv_scan(
    x: torch.Tensor,
    weight: torch.Tensor,
    alpha: torch.Tensor | None,
    q_max: int,
    conv: tuple[_Pair, _Pair, _Pair, int],
    neuron: tuple[float, float, bool, str, bool],
    time_steps: int,
    static: bool,
    binary_input: bool,
    pool: _Pair | None = None,
) -> torch.Tensor:
    """Spikes of neuron(conv(x, w)) over T, the fused equivalent of `neuron(current(x))`, followed by
    F.max_pool2d(., kernel, stride) when pool = (kernel, stride).

    conv = (stride, padding, dilation, groups); neuron = (theta, leak, soft_reset, surrogate,
    detach_reset); alpha/q_max quantize the membrane (alpha None: not quantized). With `binary_input`
    the input is saved as bool: it must then be spikes (0/1), as every non-static input of a
    SpikingConv is (spikes of the layer before, after max pooling, or of a spike encoder).
    Under torch.autocast the convs run in its dtype and the scan in fp32 (module docstring).
    """
    spec = ScanSpec(q_max, *neuron)
    dtype = autocast_dtype(x.device)
    tracked = [t for t in (x, weight, alpha) if t is not None and t.requires_grad]
    if not (torch.is_grad_enabled() and tracked):  # inference: nothing to save
        return _conv_scan_forward(x, weight, alpha, conv, time_steps, static, spec, pool, dtype)[0]
    return _SpikingConvScan.apply(x, weight, alpha, conv, time_steps, static, binary_input, spec, pool, dtype)


class _MaxPool2dIndices(torch.autograd.Function):
    """y = max_pool2d(x); saves only the argmax indices; dL/dx scatters dL/dy to them."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
        y, idx = F.max_pool2d(x, kernel_size, stride, return_indices=True)
        ctx.save_for_backward(idx)
        ctx.x_shape = x.shape
        ctx.x_format = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Any, ...]:
        (idx,) = ctx.saved_tensors
        like = torch.empty(ctx.x_shape, dtype=grad_y.dtype, device=grad_y.device, memory_format=ctx.x_format)
        return _pool_grad(grad_y, idx, like), None, None


def max_pool2d_indices(x: torch.Tensor, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    """F.max_pool2d(x, k, stride) (no padding/dilation) with a backward that keeps only the indices."""
    return _MaxPool2dIndices.apply(x, kernel_size, stride or kernel_size)
