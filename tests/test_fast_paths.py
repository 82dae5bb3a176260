"""Every fast path against the plain definition it replaces.

- neuron backend "fused" (quest/snn/scan.py) vs "reference" (per-step autograd): equal spikes,
  equal gradients of the input and of alpha, for all four neurons, with and without membrane
  quantization, with and without detach_reset;
- SpikingConv's fused conv + scan node (quest/snn/conv.py) vs the reference layer: equal spikes,
  equal conv-weight, alpha and input gradients;
- the same under torch.autocast (bf16 convs, fp32 scan), as trainer.precision=bf16-mixed runs it;
- max_pool2d_indices vs F.max_pool2d;
- the torch.compile backward kernel vs the eager one.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quest.models.vgg import SpikingVGG
from quest.snn import scan
from quest.snn.conv import max_pool2d_indices
from quest.snn.encoding import DirectEncoder, RateEncoder
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS
from quest.snn.quantizer import MintQuantizer

NEURON_NAMES = sorted(NEURONS)
BITS = [None, 2, 3]


def _close(a: torch.Tensor | None, b: torch.Tensor | None, tol: float = 1e-10) -> None:
    a = torch.zeros(()) if a is None else a  # an unused alpha gets no gradient in the reference
    b = torch.zeros(()) if b is None else b
    assert torch.allclose(a.double(), b.double(), rtol=tol, atol=tol), (a - b).abs().max()


@pytest.fixture(params=[False, True], ids=["chunk-all", "chunk-per-step"])
def chunking(request, monkeypatch):
    """Run the eager backward both on whole sequences and one step at a time."""
    if request.param:
        monkeypatch.setattr(scan, "_CHUNK_BYTES", 1)
    return request.param


def _neuron_run(name: str, backend: str, x0: torch.Tensor, w: torch.Tensor, bits, detach: bool):
    torch.manual_seed(1)
    q = MintQuantizer(bits, torch.randn(40, dtype=x0.dtype)).to(x0.dtype) if bits else None
    x = x0.clone().requires_grad_()
    spikes = NEURONS[name](theta=0.5, backend=backend, detach_reset=detach)(x, q)
    (spikes * w).sum().backward()
    return spikes, x.grad, (q.alpha.grad if q is not None else None)


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_neuron_matches_reference(name, bits, detach, chunking):
    torch.manual_seed(0)
    x0 = torch.randn(5, 2, 3, 4, 4, dtype=torch.float64) * 0.8
    w = torch.randn_like(x0)
    s_f, gx_f, ga_f = _neuron_run(name, "fused", x0, w, bits, detach)
    s_r, gx_r, ga_r = _neuron_run(name, "reference", x0, w, bits, detach)
    assert 0 < s_r.sum() < s_r.numel()  # some neurons fire, some do not
    assert torch.equal(s_f, s_r)
    _close(gx_f, gx_r)
    if bits:
        _close(ga_f, ga_r)


@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_neuron_float32_and_one_step(name):
    torch.manual_seed(2)
    for steps in (1, 4):
        x0 = torch.randn(steps, 3, 50) * 0.8
        w = torch.randn_like(x0)
        s_f, gx_f, ga_f = _neuron_run(name, "fused", x0, w, 2, False)
        s_r, gx_r, ga_r = _neuron_run(name, "reference", x0, w, 2, False)
        assert torch.equal(s_f, s_r)
        _close(gx_f, gx_r, 1e-5)
        _close(ga_f, ga_r, 1e-4)


def _layer_pair(name: str, bits, detach: bool, pool: bool, cin: int = 3):
    torch.manual_seed(3)
    layers = []
    for backend in ("fused", "reference"):
        neuron = NEURONS[name](theta=0.5, backend=backend, detach_reset=detach)
        layers.append(
            SpikingConv(cin, 4, neuron, bits=bits, pool=nn.MaxPool2d(2) if pool else None).double()
        )
    layers[1].load_state_dict(layers[0].state_dict())
    return layers


def _layer_grads(layer: SpikingConv, x0: torch.Tensor, static: bool, w: torch.Tensor):
    x = x0.clone().requires_grad_(not static)
    out = layer(x, time_steps=4, static=static)
    (out * w).sum().backward()
    alpha = layer.quantizer.alpha.grad if layer.quantizer is not None else None
    return out, layer.conv.weight.grad, alpha, x.grad


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", NEURON_NAMES)
def test_fused_spiking_conv_matches_reference(name, bits, detach, pool, chunking):
    torch.manual_seed(4)
    spikes_in = (torch.rand(4, 2, 3, 6, 6) < 0.4).double()  # binary: saved as bool by the fused path
    fused, ref = _layer_pair(name, bits, detach, pool)
    with torch.no_grad():
        fused.conv.weight.normal_(0.0, 0.6)
        ref.conv.weight.copy_(fused.conv.weight)
    w = torch.randn(4, 2, 4, 3 if pool else 6, 3 if pool else 6, dtype=torch.float64)
    out_f, gw_f, ga_f, gx_f = _layer_grads(fused, spikes_in, False, w)
    out_r, gw_r, ga_r, gx_r = _layer_grads(ref, spikes_in, False, w)
    assert 0 < out_r.sum() < out_r.numel()
    assert torch.equal(out_f, out_r)
    _close(gw_f, gw_r)
    _close(gx_f, gx_r)
    if bits:
        _close(ga_f, ga_r)


def test_fused_layer_with_observer_matches_reference():
    """An observer needs the spikes before pooling: the fused layer then pools separately."""
    torch.manual_seed(11)
    spikes_in = (torch.rand(4, 2, 3, 6, 6) < 0.4).double()
    fused, ref = _layer_pair("if_hard", 2, False, True)
    seen = []
    for layer in (fused, ref):
        layer.observer = lambda lyr, x, s: seen.append(s.detach().clone())
    w = torch.randn(4, 2, 4, 3, 3, dtype=torch.float64)
    out_f, gw_f, ga_f, gx_f = _layer_grads(fused, spikes_in, False, w)
    out_r, gw_r, ga_r, gx_r = _layer_grads(ref, spikes_in, False, w)
    assert torch.equal(seen[0], seen[1]) and torch.equal(out_f, out_r)
    _close(gw_f, gw_r)
    _close(ga_f, ga_r)
    _close(gx_f, gx_r)


@pytest.mark.parametrize("name", ["if_soft", "if_hard"])
def test_fused_static_input_matches_reference(name):
    """Direct encoding: a real-valued image, the conv runs once and the current repeats over T."""
    torch.manual_seed(5)
    image = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    fused, ref = _layer_pair(name, None, False, True)
    w = torch.randn(4, 2, 4, 3, 3, dtype=torch.float64)
    out_f, gw_f, _, _ = _layer_grads(fused, image, True, w)
    out_r, gw_r, _, _ = _layer_grads(ref, image, True, w)
    assert torch.equal(out_f, out_r)
    _close(gw_f, gw_r)


@pytest.mark.parametrize("encoder", [DirectEncoder, RateEncoder])
def test_fused_vgg_matches_reference(encoder):
    nets = []
    for backend in ("fused", "reference"):
        torch.manual_seed(6)
        neuron = {"name": "if_hard", "theta": 0.5, "backend": backend}
        nets.append(SpikingVGG(encoder(3), neuron, bits=2, width_mult=0.125).double())
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([3, 7])
    logits = []
    for net in nets:
        torch.manual_seed(7)  # the same Bernoulli draws for rate coding
        out = net(x)
        F.cross_entropy(out.flatten(0, 1), y.repeat(out.shape[0])).backward()
        logits.append(out)
    assert torch.equal(logits[0], logits[1])
    for (n, p_f), p_r in zip(nets[0].named_parameters(), nets[1].parameters()):
        assert torch.allclose(p_f.grad, p_r.grad, rtol=1e-9, atol=1e-12), n


@pytest.mark.parametrize("name", ["if_hard", "lif_soft"])
def test_fused_vgg_under_bf16_autocast_matches_reference(name):
    """Mixed precision: both paths run the convs in bf16 (the fused node explicitly, the reference
    through autocast) and the membrane scan and quantizer in fp32 (the reference casts the current
    to fp32; the fused node adds it into an fp32 H), so the spikes agree exactly and the gradients to
    bf16 precision (the fused backward sums the weight gradient over steps in fp32)."""
    nets = []
    for backend in ("fused", "reference"):
        torch.manual_seed(13)
        neuron = {"name": name, "theta": 0.5, "backend": backend}
        nets.append(SpikingVGG(DirectEncoder(3), neuron, bits=2, width_mult=0.125))
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([3, 7, 0, 1])
    outs, fired = [], []
    for net in nets:
        spikes = []
        for _, layer in net.device_layers():
            layer.observer = lambda lyr, inp, s: spikes.append(s.detach())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
            loss = F.cross_entropy(out.flatten(0, 1).float(), y.repeat(out.shape[0]))
        loss.backward()
        outs.append(out)
        fired.append(spikes)
    for s_f, s_r in zip(*fired):
        # fused: spikes in bf16 (0/1 are exact), ready for the next bf16 conv; reference: fp32
        assert s_f.dtype == torch.bfloat16 and torch.equal(s_f.float(), s_r)
    assert sum(float(s.mean()) for s in fired[0]) > 0  # the network is not silent
    assert torch.equal(outs[0], outs[1])
    for (n, p_f), p_r in zip(nets[0].named_parameters(), nets[1].parameters()):
        assert p_f.grad.dtype == torch.float32
        scale = p_r.grad.abs().max().clamp_min(1e-12)
        assert (p_f.grad - p_r.grad).abs().max() <= 5e-2 * scale, n  # seen: <= 2.3e-2


def test_fused_vgg_channels_last_matches_reference():
    nets = []
    for backend in ("fused", "reference"):
        torch.manual_seed(12)
        neuron = {"name": "lif_hard", "theta": 0.5, "backend": backend}
        nets.append(SpikingVGG(DirectEncoder(3), neuron, bits=3, width_mult=0.125, channels_last=True).double())
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    outs = []
    for net in nets:
        out = net(x)
        out.square().sum().backward()
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], rtol=1e-10, atol=1e-10)  # conv sums may differ in order
    for (n, p_f), p_r in zip(nets[0].named_parameters(), nets[1].parameters()):
        assert torch.allclose(p_f.grad, p_r.grad, rtol=1e-7, atol=1e-10), n


def test_max_pool2d_indices_matches_max_pool2d():
    torch.manual_seed(9)
    x = (torch.rand(2, 3, 8, 6) < 0.5).double()  # binary: many ties, the gradient goes to the first max
    g = torch.randn(2, 3, 4, 3, dtype=torch.float64)
    outs = []
    for pool in (max_pool2d_indices, F.max_pool2d):
        xi = x.clone().requires_grad_()
        y = pool(xi, 2)
        y.backward(g)
        outs.append((y, xi.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])


def test_second_backward_through_fused_layer_fails_loudly():
    layer = SpikingConv(3, 4, NEURONS["if_hard"](theta=0.5), bits=2)
    out = layer((torch.rand(2, 1, 3, 5, 5) < 0.5).float(), time_steps=2)
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backend='reference'"):
        out.sum().backward()


def _compile_works() -> bool:
    try:
        torch.compile(lambda t: t + 1)(torch.zeros(2))
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _compile_works(), reason="torch.compile unavailable here")
@pytest.mark.parametrize(
    "spec",
    [
        scan.ScanSpec(1, 0.5, 1.0, False, "triangle", False),
        scan.ScanSpec(0, 0.5, 1.0, True, "triangle", False),
        scan.ScanSpec(3, 0.5, 0.5, True, "triangle", True),
        scan.ScanSpec(1, 0.5, 0.5, False, "sigmoid", False),
    ],
)
def test_compiled_backward_matches_eager(spec):
    """The compiled backward equals the eager one within float rounding (the forward is eager)."""
    torch.manual_seed(10)
    x = torch.randn(4, 2, 3, 6, 6) * 0.8
    alpha = torch.tensor(0.35) if spec.q_max else None
    grad_s = torch.randn_like(x)
    results = []
    try:
        for compiled in (False, True):
            scan.set_compile(compiled)
            h, s = torch.empty_like(x), torch.empty_like(x)
            scan.scan_forward(x, h, s, alpha, spec)
            saved_h = h.clone()
            grad_alpha = scan.scan_backward_(h, grad_s, alpha, spec)
            results.append((saved_h, s, h, grad_alpha))
        assert scan.compile_enabled(), "the compiled kernels fell back to eager"
    finally:
        scan.set_compile(False)
    (h_e, s_e, g_e, a_e), (h_c, s_c, g_c, a_c) = results
    assert torch.equal(h_e, h_c) and torch.equal(s_e, s_c)
    assert torch.allclose(g_e, g_c, rtol=1e-5, atol=1e-5)
    if spec.q_max:
        assert torch.allclose(a_e, a_c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["if_hard", "lif_soft"])
@pytest.mark.parametrize("bits", [None, 2, 3])
def test_scan_forward_of_a_bf16_current_equals_its_fp32_widening(name, bits):
    """Mixed precision on CPU: scan_forward widens a bf16 current into the fp32 H and writes the spikes
    to a bf16 tensor through an fp32 step buffer (no mixed-dtype kernels); H and the spikes equal, bit
    for bit, those of the scan of the same current widened to fp32 beforehand."""
    torch.manual_seed(14)
    n = NEURONS[name](theta=0.5)
    spec = scan.ScanSpec(MintQuantizer(bits).q_max if bits else 0, n.theta, n.leak, n.soft_reset, n.surrogate, False)
    alpha = torch.tensor(0.4) if bits else None
    x = (torch.randn(4, 3, 5, 6, 6) * 0.7).bfloat16()
    h_mixed, s_mixed = torch.empty(x.shape), torch.empty(x.shape, dtype=torch.bfloat16)
    scan.scan_forward(x, h_mixed, s_mixed, alpha, spec)
    h_ref, s_ref = torch.empty(x.shape), torch.empty(x.shape)
    scan.scan_forward(x.float(), h_ref, s_ref, alpha, spec)
    assert 0 < s_ref.sum() < s_ref.numel()
    assert torch.equal(h_mixed, h_ref) and torch.equal(s_mixed.float(), s_ref)
    seen = []  # without s: every step's spikes reach on_step, in H's dtype
    scan.scan_forward(x, torch.empty(x.shape), None, alpha, spec, on_step=lambda t, s_t: seen.append(s_t.clone()))
    assert all(s_t.dtype == torch.float32 for s_t in seen) and torch.equal(torch.stack(seen), s_ref)
