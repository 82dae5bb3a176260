"""Issue 10's fused-backend defects, each against the reference backend (the definition)."""
from __future__ import annotations

import math

import pytest
import torch

from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS
from quest.snn.quantizer import MintQuantizer


@pytest.mark.parametrize("static", [False, True])
def test_frozen_quantized_conv_still_passes_gradient_to_its_input(static):
    """Fine-tuning with frozen layers: the layer's weight and scale do not require a gradient while its
    input does (the fused backward used to crash with 'NoneType' object has no attribute 'to')."""
    torch.manual_seed(0)
    layers = {}
    for b in ("fused", "reference"):
        layers[b] = SpikingConv(3, 4, NEURONS["if_hard"](theta=0.5, backend=b), bits=2)
    layers["reference"].load_state_dict(layers["fused"].state_dict())
    x0 = torch.rand(2, 3, 6, 6) if static else (torch.rand(4, 2, 3, 6, 6) < 0.4).float()
    grads = {}
    for b, lay in layers.items():
        lay.requires_grad_(False)  # weight and alpha
        x = x0.clone().requires_grad_()
        lay(x, time_steps=4, static=static).sum().backward()
        assert lay.conv.weight.grad is None
        grads[b] = x.grad
    assert grads["reference"].abs().sum() > 0
    torch.testing.assert_close(grads["fused"], grads["reference"], rtol=1e-5, atol=1e-6)


def _alpha_grad(backend: str, x0: torch.Tensor, alpha: float) -> torch.Tensor:
    q = MintQuantizer(2)
    with torch.no_grad():
        q.alpha.fill_(alpha)
    x = x0.clone().requires_grad_()
    NEURONS["if_hard"](theta=0.5, backend=backend)(x, q).sum().backward()
    return q.alpha.grad


def test_fused_alpha_gradient_equals_reference_at_the_clamp_edge_in_float32():
    """Defect 3: membranes with tanh(U') at alpha, where a tanh computed as 2 sigmoid(2U) - 1 lands on
    the other side of the clamp than torch.tanh; fused and reference must agree to float32 rounding."""
    alpha = 0.3
    edge = torch.tensor(math.atanh(alpha), dtype=torch.float32)
    u = torch.unique(edge + torch.arange(-2000, 2000, dtype=torch.float32) * 1e-8)  # every float32 near the edge
    x0 = torch.stack([u, torch.full_like(u, 0.25)])  # step 0: U' = u (no spike); step 1: H near theta
    fused, reference = _alpha_grad("fused", x0, alpha), _alpha_grad("reference", x0, alpha)
    assert reference.abs() > 1
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=0)
