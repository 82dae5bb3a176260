"""MINT quantizer: levels, straight-through gradient, alpha init (REFERENCE.md section 5)."""
from __future__ import annotations

import math

import pytest
import torch

from quest.snn.quantizer import MintQuantizer, max_level, mint_levels, mint_quantize, mint_quantize_fused


@pytest.mark.parametrize("bits,levels", [(2, 3), (3, 7), (4, 15)])
def test_level_counts(bits, levels):
    q = max_level(bits)
    x = torch.linspace(-3, 3, 10001)
    got = mint_levels(x, torch.tensor(0.9), q).unique().tolist()
    assert got == list(range(-q, q + 1))
    assert len(got) == levels


def test_values_worked_by_hand():
    # alpha = .5, 2-bit (Q=1): tanh(.1)=.0997 -> .199 -> round 0 -> 0
    # tanh(.3)=.2913 -> .583 -> 1 -> .5 ; tanh(-2)=-.964 -> clamp -1 -> -.5
    # 3-bit (Q=3): tanh(.3)/.5*3=1.748 -> 2 -> 2*.5/3=.3333
    alpha = torch.tensor(0.5)
    x = torch.tensor([0.1, 0.3, -2.0])
    assert mint_quantize(x, alpha, 1).tolist() == pytest.approx([0.0, 0.5, -0.5])
    assert mint_quantize(torch.tensor([0.3]), alpha, 3).item() == pytest.approx(1 / 3)
    assert mint_levels(x, alpha, 1).tolist() == [0, 1, -1]


def test_straight_through_gradient():
    # inside the clamp: dq/dx = 1 - tanh(x)^2 (round passes the gradient); outside: 0
    alpha = torch.tensor(0.5, requires_grad=True)
    x = torch.tensor([0.1, 0.3, -2.0], requires_grad=True)
    mint_quantize(x, alpha, 1).sum().backward()
    t = torch.tanh(torch.tensor([0.1, 0.3]))
    assert x.grad[:2].tolist() == pytest.approx((1 - t**2).tolist())
    assert x.grad[2].item() == 0.0
    # dq/dalpha = round(.)/Q - 1[inside] tanh(x)/alpha: 0 - .0997/.5, 1 - .2913/.5, -1
    expected = (0 - math.tanh(0.1) / 0.5) + (1 - math.tanh(0.3) / 0.5) + (-1)
    assert alpha.grad.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("q_max", [1, 3, 7])
def test_fused_quantizer_matches_definition(q_max):
    """The one-node quantizer (MintQuantizer.forward) against the plain autograd definition: equal
    values bit for bit, equal gradients of x and alpha, inside and outside the clamp."""
    torch.manual_seed(0)
    x0 = torch.randn(4000, dtype=torch.float64) * 1.5
    g = torch.randn_like(x0)
    outs = []
    for fn in (mint_quantize_fused, mint_quantize):
        x = x0.clone().requires_grad_()
        alpha = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
        y = fn(x, alpha, q_max)
        (y * g).sum().backward()
        outs.append((y.detach(), x.grad, alpha.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    assert (outs[1][1] == 0).any() and (outs[1][1] != 0).any()  # both sides of the clamp
    assert torch.allclose(outs[0][1], outs[1][1], rtol=1e-12, atol=1e-12)
    assert torch.allclose(outs[0][2], outs[1][2], rtol=1e-10, atol=1e-12)
    for dtype in (torch.float32,):  # also bit-identical in fp32, the training dtype
        x, a = x0.to(dtype), torch.tensor(0.6, dtype=dtype)
        assert torch.equal(mint_quantize_fused(x, a, q_max), mint_quantize(x, a, q_max))


def test_alpha_starts_at_two_mean_abs_over_sqrt_q():
    w = torch.tensor([0.1, -0.3, 0.2, -0.2])  # mean |w| = .2
    assert MintQuantizer(2, w).alpha.item() == pytest.approx(2 * 0.2 / 1)
    assert MintQuantizer(4, w).alpha.item() == pytest.approx(2 * 0.2 / math.sqrt(7))


def test_unsupported_bits_name_the_key():
    with pytest.raises(ValueError, match=r"precision\.bits=5"):
        MintQuantizer(5)


def _plain_levels(x: torch.Tensor, alpha: torch.Tensor, q_max: int) -> torch.Tensor:
    """The definition's levels with torch.tanh (as `mint_quantize` computes them)."""
    return torch.round(torch.clamp(torch.tanh(x) / alpha, -1.0, 1.0) * q_max)


def _boundary_inputs(alpha: float, q_max: int, dtype: torch.dtype) -> torch.Tensor:
    """x at every rounding boundary of the levels and a few ulps around it: for each half-integer
    k + 1/2, the float where the plain level changes (bisection over the floats), +-8 ulps, both signs."""
    a = torch.tensor(alpha, dtype=dtype)
    xs = []
    for k in range(q_max):
        target = alpha * (k + 0.5) / q_max
        if target >= 1.0:
            continue
        lo = torch.tensor(math.atanh(target) * 0.99, dtype=dtype)
        hi = torch.tensor(min(math.atanh(target) * 1.01 + 1e-6, 20.0), dtype=dtype)
        for _ in range(200):  # bisection: plain level at lo <= k, at hi > k
            mid = (lo + hi) / 2
            if mid in (lo, hi):
                break
            if _plain_levels(mid.view(1), a, q_max).item() > k:
                hi = mid
            else:
                lo = mid
        x = hi
        around = [x]
        up = down = x
        for _ in range(8):
            up, down = torch.nextafter(up, up + 1), torch.nextafter(down, down - 1)
            around += [up, down]
        xs += around + [-v for v in around]
    return torch.stack(xs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("q_max", [1, 3, 7])
def test_fast_levels_equal_plain_tanh_levels(q_max, dtype):
    """mint_levels_into (sigmoid, then torch.tanh near rounding boundaries) gives exactly the levels of
    the plain definition: at and around every boundary, for small and large alpha, on a million
    random values, and for inf/-inf and large |x|; so the membrane quantizer, the weight quantizer and
    the monitors' levels are unchanged."""
    from quest.snn.quantizer import mint_levels_into, mint_quantize_out

    g = torch.Generator().manual_seed(q_max)
    for alpha in (0.9, 0.37, 0.05, 1e-3):
        a = torch.tensor(alpha, dtype=dtype)
        edge = _boundary_inputs(alpha, q_max, dtype)
        rand = torch.randn(1_000_000, generator=g, dtype=dtype) * alpha
        special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 30.0, -30.0, 1e-30], dtype=dtype)
        mixed = torch.cat([rand[:1000], edge[: len(edge) // 2 * 2]])
        for x in (edge, rand, special, mixed.view(1, -1, 2), mixed.view(-1, 2).t()):  # .t(): not contiguous
            plain = _plain_levels(x, a, q_max)
            if x is edge:
                assert len(plain.unique()) >= 2 * q_max  # the boundaries were found: levels change
            got = mint_levels_into(x, a, q_max, torch.empty_like(x))
            assert torch.equal(got, plain), (alpha, (got != plain).sum())
            assert torch.equal(mint_quantize_out(x, a, q_max, out=torch.empty_like(x)), mint_quantize(x, a, q_max))
            assert torch.equal(mint_levels(x, a, q_max), plain.to(torch.int8))
    nan = torch.tensor([float("nan"), 0.2], dtype=dtype)
    assert torch.isnan(mint_levels_into(nan, torch.tensor(0.5, dtype=dtype), q_max, torch.empty_like(nan))[0])


def test_levels_reuse_their_work_buffers_without_stale_values():
    """MintQuantizer.levels keeps its work buffers between calls (the monitor calls it every step):
    each call gives the plain levels of its own weights, also when the shape changes."""
    q = MintQuantizer(3, torch.randn(8, 4, 3, 3))
    alpha = q.scale().detach()
    for shape in [(8, 4, 3, 3), (8, 4, 3, 3), (5, 7)]:
        w = torch.randn(shape) * 0.3
        assert torch.equal(q.levels(w), _plain_levels(w, alpha, q.q_max).to(torch.int8))
    assert q._level_work[0].shape == (5, 7)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_quantize_hands_out_the_levels_it_computes(bits):
    """MintQuantizer(x, levels_out=...) returns q(x) unchanged and writes x's levels (those of
    `mint_levels`) into levels_out: what the transition monitor reads instead of recomputing them."""
    x = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(bits)) * 0.1
    quant = MintQuantizer(bits, x)
    kept = torch.empty(x.shape, dtype=torch.int8)
    assert torch.equal(quant(x, levels_out=kept), quant(x))
    assert torch.equal(kept, mint_levels(x, quant.scale(), quant.q_max))
