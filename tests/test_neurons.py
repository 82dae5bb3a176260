"""Neuron dynamics against sequences worked by hand (REFERENCE.md section 4), theta = 0.5.

Inputs are multiples of 1/8 so every sum is exact in float32.
"""
from __future__ import annotations

import pytest
import torch

from quest.snn.neurons import NEURONS, SpikingNeuron

# (neuron, input x_t, expected S_t, expected U_t after reset)
HAND_WORKED = [
    # IF hard: H=.375 S0 U=.375 | H=.75 S1 U=0 | H=.25 S0 U=.25 | H=.5 S0 (not > theta) U=.5
    ("if_hard", [0.375, 0.375, 0.25, 0.25], [0, 1, 0, 0], [0.375, 0.0, 0.25, 0.5]),
    # IF soft: H=.375 S0 U=.375 | H=.75 S1 U=.25 | H=.5 S0 U=.5 | H=.75 S1 U=.25
    ("if_soft", [0.375, 0.375, 0.25, 0.25], [0, 1, 0, 1], [0.375, 0.25, 0.5, 0.25]),
    # LIF hard (lambda .5): H=.75 S1 U=0 | H=.5 S0 U=.25 | H=.5 S0 U=.25 | H=.5 S0 U=.25
    ("lif_hard", [0.75, 0.5, 0.25, 0.25], [1, 0, 0, 0], [0.0, 0.25, 0.25, 0.25]),
    # LIF soft: H=.75 S1 U=.125 | H=.625 S1 U=.0625 | H=.3125 S0 U=.15625 | H=.40625 S0 U=.203125
    ("lif_soft", [0.75, 0.5, 0.25, 0.25], [1, 1, 0, 0], [0.125, 0.0625, 0.15625, 0.203125]),
]


@pytest.mark.parametrize("name,x,spikes,membrane", HAND_WORKED, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_hand_worked_sequence(name, x, spikes, membrane, backend):
    neuron = NEURONS[name](theta=0.5, backend=backend)
    xs = torch.tensor(x).view(4, 1)
    assert neuron(xs).view(-1).tolist() == spikes
    u = torch.zeros(1)
    got_s, got_u = [], []
    for t in range(4):
        s, u = neuron.step(xs[t], u)
        got_s.append(s.item())
        got_u.append(u.item())
    assert got_s == spikes
    assert got_u == pytest.approx(membrane, abs=0)


def test_default_leaks_and_resets():
    assert (NEURONS["if_hard"]().leak, NEURONS["if_soft"]().leak, NEURONS["lif_hard"]().leak, NEURONS["lif_soft"]().leak) == (1.0, 1.0, 0.5, 0.5)
    assert [NEURONS[n]().reset for n in ("if_hard", "if_soft", "lif_hard", "lif_soft")] == ["hard", "soft", "hard", "soft"]
    assert sorted(NEURONS) == ["if_hard", "if_soft", "lif_hard", "lif_soft"]


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_triangle_surrogate_gradient(backend):
    # T = 1: dS/dx = max(0, 1 - |x - theta|): x=.75 -> .75, x=.25 -> .75, x=.5 -> 1, x=2 -> 0
    x = torch.tensor([[0.75, 0.25, 0.5, 2.0]], requires_grad=True)
    NEURONS["if_hard"](backend=backend)(x).sum().backward()
    assert x.grad.view(-1).tolist() == pytest.approx([0.75, 0.75, 1.0, 0.0])


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_gradient_through_reset_is_optional(backend):
    # IF soft, T=2, x = (.75, .25): S0=1, U0=.25, H1=.5.
    # dS1/dx0 = sg(H1) * dH1/dx0 with dH1/dx0 = dU0/dx0 = 1 - theta * sg(H0) (reset path) or 1 (detached).
    # sg(H0)=max(0,1-|.75-.5|)=.75, sg(H1)=1 -> through reset: 1-.5*.75=.625; detached: 1.
    for detach, expected in ((False, 0.625), (True, 1.0)):
        x = torch.tensor([[0.75], [0.25]], requires_grad=True)
        s = NEURONS["if_soft"](backend=backend, detach_reset=detach)(x)
        s[1].sum().backward()
        assert x.grad[0].item() == pytest.approx(expected)


def test_bad_neuron_values_name_the_key():
    with pytest.raises(ValueError, match=r"neuron\.surrogate='nope'"):
        NEURONS["if_hard"](surrogate="nope")
    with pytest.raises(ValueError, match=r"neuron\.leak=0\.5: IF neurons"):
        NEURONS["if_hard"](leak=0.5)
    with pytest.raises(ValueError, match=r"neuron\.theta"):
        NEURONS["lif_soft"](theta=0.0)
    with pytest.raises(ValueError, match=r"neuron\.backend"):
        NEURONS["lif_soft"](backend="cuda-magic")
    with pytest.raises(ValueError, match=r"neuron\.reset='none': allowed \['hard', 'soft'\]"):
        SpikingNeuron(reset="none")


def test_one_neuron_with_reset_and_leak_as_parameters():
    """The presets are the one model with their reset and leak; the same sequence as LIF soft above."""
    neuron = SpikingNeuron(theta=0.5, leak=0.5, reset="soft", backend="reference")
    assert neuron(torch.tensor([0.75, 0.5, 0.25, 0.25]).view(4, 1)).view(-1).tolist() == [1, 1, 0, 0]
