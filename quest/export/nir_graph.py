"""A trained QUEST net as a NIR 1.0 graph (PyPI `nir`), where NIR can represent it.

Graph: input (the normalised image, C x H x W, presented at each of the T steps) -> per spiking
conv: Conv2d (dequantised weights, zero bias) -> IF or LIF -> pooling -> ... -> AvgPool2d (the
adaptive pool) -> Flatten -> Affine (the head) -> output (logits at every step; the prediction is
the argmax of their sum over T).

Neurons. QUEST's step (REFERENCE.md section 4) is H_t = x_t + U_{t-1}, S_t = 1[H_t > theta],
hard reset U_t = lambda H_t (1 - S_t). NIR's neurons are continuous-time; this export uses the
forward-Euler discretisation with time step dt (default 1e-4 s, the convention of SpikingJelly's
and most peers' NIR importers), input I_t = x_t:
- IF  (lambda = 1): dv/dt = R I, R = 1 / dt, so that v += dt R I = x_t;
- LIF (lambda < 1): tau dv/dt = (v_leak - v) + R I with v_leak = 0, tau = dt / (1 - lambda),
  R = tau / dt, so that v <- (1 - dt/tau) v + (dt/tau) R I = lambda v + x_t (the leak acts on the
  reset membrane, as in QUEST);
both with v_threshold = theta, v_reset = 0 and NIR's strict comparison v > v_threshold (QUEST's
too; SpikingJelly fires at v >= v_threshold: the two differ only where H sits exactly on theta).
Max pooling of spikes is written exactly as AvgPool2d followed by Threshold(0) (the max of 0/1
spikes is 1 iff their mean is > 0); peers without a Threshold node (SpikingJelly 2.0) cannot import
that graph, which is why conf/model/vgg8_avgpool.yaml exists.

Not representable in NIR 1.0, so refused (one line) unless `lossy=True`, which exports the nearest
graph and lists every approximation in the graph's metadata (`quest.approximations`):
- a soft reset (U_t = lambda (H_t - theta S_t); QUEST's encoding neuron by default): exported as
  a reset to zero;
- MINT's membrane quantisation U <- q(U) (it rounds, and saturates at +-alpha): exported as a
  real-valued membrane;
- a stochastic encoder (rate, latency): the graph's input is then the encoded spike train.
Weights are exported as their dequantised float32 values (alpha / Q) * W, exactly the ones QUEST
computes with; alpha, Q, the integer levels W and the device pattern ride in the node metadata.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quest.export.run import ExportError, TrainedRun

DEFAULT_DT_S = 1e-4


def _pair(v: Any) -> np.ndarray:
    v = np.atleast_1d(np.asarray(v, dtype=np.int64))
    return np.repeat(v, 2) if v.size == 1 else v


def unrepresentable(run: TrainedRun) -> list[tuple[str, str]]:
    """What of the run's net NIR 1.0 cannot represent exactly: (reason, what --lossy exports
    instead) per kind; empty when the export is exact."""
    model = run.model
    found = []
    soft = ", ".join(n for n, b in zip(model.block_names, model.blocks) if b.neuron.soft_reset)
    if soft:
        found.append((f"soft reset ({soft}): NIR 1.0's IF/LIF reset to v_reset",
                      f"soft reset ({soft}) exported as a reset to zero (U_t = lambda H_t (1 - S_t))"))
    quantized = ", ".join(n for n, b in zip(model.block_names, model.blocks) if b.quantize_membrane)
    if quantized:
        found.append((f"MINT membrane quantisation ({quantized}): it rounds and saturates at +-alpha, NIR's membrane "
                      "is real-valued (train with precision.quantize_membrane=false or model=vgg8_avgpool)",
                      f"MINT membrane quantisation ({quantized}) dropped: the exported membrane is real-valued"))
    if not model.encoder.is_static:
        name = type(model.encoder).__name__
        found.append((f"{name} (stochastic spike encoding): NIR 1.0 has no such node",
                      f"{name}: the graph's input is the encoded spike train, the encoder is not exported"))
    return found


def _neuron_node(neuron: Any, shape: tuple[int, ...], dt: float, meta: dict[str, Any]) -> Any:
    import nir

    theta = np.full(shape, neuron.theta, dtype=np.float32)
    zero = np.zeros(shape, dtype=np.float32)
    if neuron.leak == 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, dtype=np.float32), v_threshold=theta, v_reset=zero, metadata=meta)
    tau = dt / (1.0 - neuron.leak)
    return nir.LIF(tau=np.full(shape, tau, dtype=np.float32), r=np.full(shape, tau / dt, dtype=np.float32),
                   v_leak=zero, v_threshold=theta, v_reset=zero, metadata=meta)


def to_nir(run: TrainedRun, input_shape: tuple[int, int, int], lossy: bool = False, dt: float = DEFAULT_DT_S,
           pattern: Any = None) -> Any:
    """The run's net as a nir.NIRGraph; ExportError (one line) when it is not representable and not
    `lossy`. `pattern`: a quest.export.device.CellMapping for the node metadata (or None)."""
    import nir

    found = unrepresentable(run)
    if found and not lossy:
        raise ExportError("not representable in NIR 1.0: " + "; ".join(r for r, _ in found)
                          + " (export with --lossy to approximate)")
    model = run.model
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges: list[tuple[str, str]] = []
    last = "input"

    def add(name: str, node: Any) -> None:
        nonlocal last
        nodes[name] = node
        edges.append((last, name))
        last = name

    c, h, w = input_shape
    with torch.no_grad():
        for name, block in zip(model.block_names, model.blocks):
            conv = block.conv
            weight = block.weight().detach().float().numpy()
            meta: dict[str, Any] = {"quest.layer": name}
            if block.quantized:
                q_max = block.quantizer.q_max
                meta.update({
                    "quest.alpha": float(block.quantizer.scale()),
                    "quest.q_max": q_max,
                    "quest.levels": np.arange(-q_max, q_max + 1, dtype=np.int64),
                    "quest.weight_levels": block.weight_levels().numpy().astype(np.int8),
                    "quest.weight": "(alpha / q_max) * weight_levels, float32",
                })
                if pattern is not None:
                    meta.update({"quest.device": pattern.card, "quest.pattern": pattern.pattern_number,
                                 "quest.pattern_text": pattern.pattern})
            else:
                meta["quest.weight"] = "full precision (encoding layer)"
            add(f"{name}.conv", nir.Conv2d(input_shape=(h, w), weight=weight, stride=_pair(conv.stride),
                                           padding=_pair(conv.padding), dilation=_pair(conv.dilation),
                                           groups=conv.groups, bias=np.zeros(weight.shape[0], dtype=np.float32),
                                           metadata=meta))
            kh, kw = conv.kernel_size
            h = (h + 2 * conv.padding[0] - kh) // conv.stride[0] + 1
            w = (w + 2 * conv.padding[1] - kw) // conv.stride[1] + 1
            c = conv.out_channels
            n = block.neuron
            add(f"{name}.neuron", _neuron_node(n, (c, h, w), dt, {
                "quest.layer": name, "quest.reset": "soft" if n.soft_reset else "hard",
                "quest.leak": n.leak, "quest.theta": n.theta, "quest.membrane_quantized": bool(block.quantize_membrane)}))
            if block.pool is None:
                continue
            k, s = int(_pair(block.pool.kernel_size)[0]), int(_pair(block.pool.stride or block.pool.kernel_size)[0])
            add(f"{name}.pool", nir.AvgPool2d(kernel_size=_pair(k), stride=_pair(s), padding=_pair(0)))
            h, w = (h - k) // s + 1, (w - k) // s + 1
            if isinstance(block.pool, nn.MaxPool2d):  # max of 0/1 spikes = 1[mean > 0]
                add(f"{name}.pool_threshold", nir.Threshold(threshold=np.zeros((c, h, w), dtype=np.float32),
                                                            metadata={"quest.op": "max pooling of spikes"}))
        out = int(_pair(model.pool.output_size)[0])
        if h % out or w % out:
            raise ExportError(f"adaptive average pool {h}x{w} -> {out}x{out} has uneven windows: not an AvgPool2d")
        if h != out:
            k = h // out
            add("pool", nir.AvgPool2d(kernel_size=_pair(k), stride=_pair(k), padding=_pair(0)))
        add("flatten", nir.Flatten(input_type={"input": np.array([c, out, out])}, start_dim=0, end_dim=-1))
        linears = [m for m in model.head if isinstance(m, nn.Linear)]
        for j, linear in enumerate(linears):
            add(f"head{j}", nir.Affine(weight=linear.weight.detach().float().numpy(),
                                       bias=linear.bias.detach().float().numpy()))
        nodes["output"] = nir.Output(output_type={"output": np.array([linears[-1].out_features])})
        edges.append((last, "output"))
    provenance = run.provenance()
    meta = {
        "quest.exact": not found,
        "quest.approximations": json.dumps([a for _, a in found]),
        "quest.time_steps": model.time_steps,
        "quest.dt_s": dt,
        "quest.discretisation": "forward Euler with dt; IF: R = 1/dt; LIF: tau = dt / (1 - leak), R = tau/dt, "
                                "v_leak = 0; reset to v_reset = 0; spike when v > v_threshold",
        "quest.input": f"normalised image (mean {list(run.config.data.mean)}, std {list(run.config.data.std)}), "
                       f"the same at each of the T steps" if model.encoder.is_static else "encoded spikes",
        "quest.prediction": "argmax over classes of the sum over the T steps of the output",
        "quest.trained_by_commit": str(provenance["trained_by"].get("commit")),
        "quest.exported_by_commit": str(provenance["exported_by"].get("commit")),
        "quest.checkpoint": provenance["checkpoint"],
        "quest.config": json.dumps(provenance["config"]),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(graph: Any, path: str | Path) -> Path:
    import nir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return path
