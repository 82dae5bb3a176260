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
