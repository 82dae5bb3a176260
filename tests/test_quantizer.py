"""MINT quantizer: levels, straight-through gradient, alpha init (REFERENCE.md section 5)."""
from __future__ import annotations

import math

import pytest
import torch

from quest.snn.quantizer import MintQuantizer, max_level, mint_levels, mint_quantize


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


def test_alpha_starts_at_two_mean_abs_over_sqrt_q():
    w = torch.tensor([0.1, -0.3, 0.2, -0.2])  # mean |w| = .2
    assert MintQuantizer(2, w).alpha.item() == pytest.approx(2 * 0.2 / 1)
    assert MintQuantizer(4, w).alpha.item() == pytest.approx(2 * 0.2 / math.sqrt(7))


def test_unsupported_bits_name_the_key():
    with pytest.raises(ValueError, match=r"precision\.bits=5"):
        MintQuantizer(5)
