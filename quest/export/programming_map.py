"""Device programming map: what a chip team needs to put a trained QUEST net on its cells.

One `.npz` of arrays and a JSON manifest beside it, both readable without torch (numpy, json):

- per device layer (every quantized conv): the integer level W of every weight (int8, [-Q, Q]),
  the device state of every cell under the R-S pattern (uint8, an index into the card's states),
  alpha, the scale s = alpha / Q, the integer threshold floor(theta / s) and the requantization
  tables of the integer membrane (quest/snn/integer_inference.py): integer inference needs nothing
  else from the layer;
- the full-precision encoding conv and the linear head as they are (float32);
- the manifest: layer names, shapes, kinds, the card, the pattern, precision, neuron, T, the
  programming energy, and the commit and config that trained the net.

Programming energy (REFERENCE.md section 7): writing level W into a fresh cell (in the card's
initial state a) costs the RSTD's cheapest path C[a][state(W)]; a layer costs
sum over cells of C[a][state(cell)], the map the sum over layers. Re-programming from an older map
of the same net costs sum over cells of C[state_old(cell)][state_new(cell)].
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from quest.export.device import CellMapping, cell_mapping
from quest.export.run import ExportError, TrainedRun
from quest.results import ENERGY_FILE, read_json

SCHEMA = "quest.programming_map/1"
MAP_NPZ = "programming_map.npz"
MAP_JSON = "programming_map.json"


# -- energy --------------------------------------------------------------------------------------
def programming_energy_fJ(states: np.ndarray, cost_fJ: np.ndarray, initial_state: int) -> float:
    """sum over cells of C[a][state(cell)]: writing a layer onto fresh cells (all in state a)."""
    return float(np.asarray(cost_fJ)[initial_state][np.asarray(states, dtype=np.int64)].sum())


def reprogramming_energy_fJ(old_states: np.ndarray, new_states: np.ndarray, cost_fJ: np.ndarray) -> float:
    """sum over cells of C[state_old(cell)][state_new(cell)]: moving a layer from one map to another."""
    old = np.asarray(old_states, dtype=np.int64)
    new = np.asarray(new_states, dtype=np.int64)
    return float(np.asarray(cost_fJ)[old, new].sum())


# -- building a map ------------------------------------------------------------------------------
def selected_pattern(run: TrainedRun) -> int:
    """The pattern the run selected: energy.json's `write.selected_pattern` (results.json's summary
    as a fallback), or the configured number."""
    energy = read_json(run.run_dir / ENERGY_FILE) or {}
    chosen = (energy.get("write") or {}).get("selected_pattern")
    chosen = chosen if chosen is not None else (run.results.get("energy") or {}).get("selected_pattern")
    if chosen is None:
        configured = (run.config.get("pattern") or {}).get("selection")
        chosen = configured if isinstance(configured, int) else None
    if chosen is None:
        raise ExportError(f"{run.run_dir}: the run recorded no selected pattern; name one with --pattern N")
    return int(chosen)


def _layer_specs(run: TrainedRun) -> list[tuple[str, Any]]:
    names = run.model.block_names
    return list(zip(names, run.model.blocks))


def build_map(run: TrainedRun, pattern: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, manifest) of the run's net under pattern `pattern` (None: the run's selected one)."""
    import torch

    from quest.snn.integer_inference import scan_tables

    model, cfg = run.model, run.config
    bits = model.bits
    if bits is None:
        raise ExportError("precision=fp32: the net has no weight levels to program into device states")
    number = selected_pattern(run) if pattern is None else int(pattern)
    try:
        cells = cell_mapping(cfg.device, bits, number)
    except ValueError as e:
        raise ExportError(str(e).splitlines()[0]) from None
    arrays: dict[str, np.ndarray] = {}
    layers: list[dict[str, Any]] = []
    energy: dict[str, float] = {}
    with torch.no_grad():
        for i, (name, block) in enumerate(_layer_specs(run)):
            conv, neuron = block.conv, block.neuron
            entry: dict[str, Any] = {
                "name": name,
                "kind": "encoding" if i == 0 else "device",
                "in_channels": conv.in_channels,
                "out_channels": conv.out_channels,
                "kernel_size": list(conv.kernel_size),
                "stride": list(conv.stride),
                "padding": list(conv.padding),
                "pool": None if block.pool is None else {
                    "kind": "max" if isinstance(block.pool, torch.nn.MaxPool2d) else "avg",
                    "kernel_size": int(np.atleast_1d(block.pool.kernel_size)[0]),
                    "stride": int(np.atleast_1d(block.pool.stride or block.pool.kernel_size)[0]),
                },
                "neuron": {"theta": neuron.theta, "leak": neuron.leak,
                           "reset": "soft" if neuron.soft_reset else "hard"},
                "membrane_quantized": bool(block.quantize_membrane),
            }
            if i == 0:
                arrays[f"{name}/weight"] = conv.weight.detach().float().numpy()
                entry["arrays"] = {"weight": f"{name}/weight"}
                layers.append(entry)
                continue
            levels = block.weight_levels().numpy().astype(np.int8)
            alpha = float(block.quantizer.scale())
            states = cells.states_of(levels)
            arrays[f"{name}/levels"] = levels
            arrays[f"{name}/states"] = states
            entry["arrays"] = {"levels": f"{name}/levels", "states": f"{name}/states"}
            entry.update(
                alpha=alpha,
                scale=alpha / block.quantizer.q_max,
                q_max=block.quantizer.q_max,
                theta_over_scale=neuron.theta * block.quantizer.q_max / alpha,
                n_weights=int(levels.size),
                level_counts={str(lv): int((levels == lv).sum()) for lv in cells.levels},
            )
            if block.quantize_membrane:
                tables = scan_tables(neuron.theta, neuron.leak, neuron.soft_reset, alpha, block.quantizer.q_max)
                entry["threshold_int"] = tables.threshold
                arrays[f"{name}/requant_quiet"] = tables.quiet.numpy()
                arrays[f"{name}/requant_fired"] = tables.fired.numpy()
                entry["arrays"].update(requant_quiet=f"{name}/requant_quiet", requant_fired=f"{name}/requant_fired")
            energy[name] = programming_energy_fJ(states, cells.cost_fJ, cells.initial_state)
            layers.append(entry)
        head = []
        for j, linear in enumerate(m for m in model.head if isinstance(m, torch.nn.Linear)):
            arrays[f"head{j}/weight"] = linear.weight.detach().float().numpy()
            arrays[f"head{j}/bias"] = linear.bias.detach().float().numpy()
            head.append({"name": f"head{j}", "in_features": linear.in_features, "out_features": linear.out_features,
                         "arrays": {"weight": f"head{j}/weight", "bias": f"head{j}/bias"}})
    integer_ok = model.pool_kind == "max" and all(b.quantize_membrane for b in list(model.blocks)[1:])
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "files": {"arrays": MAP_NPZ},
        "device": {
            "card": cells.card,
            "states": list(cells.states),
            "initial_state": cells.states[cells.initial_state],
            "reconstruction": cells.reconstruction,
            "pattern": cells.pattern_number,
            "pattern_text": cells.pattern,
            "level_state": {str(lv): cells.states[s] for lv, s in zip(cells.levels, cells.level_state)},
            "cost_fJ": cells.cost_fJ.tolist(),
        },
        "precision": {"bits": bits, "q_max": cells.levels[-1], "levels": list(cells.levels)},
        "neuron": OmegaConf.to_container(cfg.neuron, resolve=True) if "neuron" in cfg else None,
        "time_steps": model.time_steps,
        "encoding": {"name": type(model.encoder).__name__, "static": bool(model.encoder.is_static),
                     "mean": list(cfg.data.mean), "std": list(cfg.data.std)},
        "layers": layers,
        "head": {"pool_out": int(np.atleast_1d(model.pool.output_size)[0]), "linears": head,
                 "prediction": "argmax over classes of the sum over the T steps of the head's output"},
        "integer_inference": integer_ok,
        "programming_energy_fJ": {
            "method": "fresh cells, all in the card's initial state; each cell costs the RSTD's cheapest path "
                      "from the initial state to the state of its level",
            "layers": energy,
            "total": float(sum(energy.values())),
        },
        "provenance": run.provenance(),
    }
    return arrays, manifest


def write_map(arrays: dict[str, np.ndarray], manifest: dict[str, Any], out_dir: str | Path) -> Path:
    """<out_dir>/programming_map.npz and programming_map.json; returns the manifest's path."""
    from quest.results import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / MAP_NPZ, **arrays)
    write_json_atomic(out / MAP_JSON, manifest)
    (out / MAP_JSON).chmod(0o644)  # a file to hand on (the atomic write creates it private)
    return out / MAP_JSON


def read_map(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, manifest) from a map's JSON manifest (or its folder); numpy and json only."""
    path = Path(path)
    if path.is_dir():
        path = path / MAP_JSON
    if not path.is_file():
        raise ExportError(f"programming map {path}: no such file")
    manifest = json.loads(path.read_text())
    if manifest.get("schema") != SCHEMA:
        raise ExportError(f"programming map {path}: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    with np.load(path.parent / manifest["files"]["arrays"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, manifest


def reprogramming(old: tuple[dict[str, np.ndarray], dict[str, Any]],
                  new: tuple[dict[str, np.ndarray], dict[str, Any]]) -> dict[str, Any]:
    """Energy to move the cells from map `old` to map `new` (the same net on the same card)."""
    (old_arrays, old_m), (new_arrays, new_m) = old, new
    if old_m["device"]["card"] != new_m["device"]["card"] or old_m["device"]["cost_fJ"] != new_m["device"]["cost_fJ"]:
        raise ExportError(f"re-programming needs the same device card: {old_m['device']['card']} vs {new_m['device']['card']}")
    old_layers = {l["name"]: l for l in old_m["layers"] if l["kind"] == "device"}
    new_layers = {l["name"]: l for l in new_m["layers"] if l["kind"] == "device"}
    if list(old_layers) != list(new_layers):
        raise ExportError(f"re-programming needs the same layers: {list(old_layers)} vs {list(new_layers)}")
    cost = np.asarray(new_m["device"]["cost_fJ"])
    layers: dict[str, Any] = {}
    for name in new_layers:
        a = old_arrays[old_layers[name]["arrays"]["states"]]
        b = new_arrays[new_layers[name]["arrays"]["states"]]
        if a.shape != b.shape:
            raise ExportError(f"re-programming needs the same shapes: {name} {a.shape} vs {b.shape}")
        layers[name] = {"energy_fJ": reprogramming_energy_fJ(a, b, cost), "cells_changed": int((a != b).sum()),
                        "cells": int(a.size)}
    return {
        "from": old_m["provenance"]["checkpoint"],
        "method": "each cell costs the RSTD's cheapest path from its state in the older map to its state in this one",
        "layers": layers,
        "total_fJ": float(sum(v["energy_fJ"] for v in layers.values())),
    }


# -- inference driven only by a map --------------------------------------------------------------
def map_logits(arrays: dict[str, np.ndarray], manifest: dict[str, Any], images: Any) -> Any:
    """Logits [T, B, K] of normalised images [B, C, H, W] computed from the map alone: the float
    encoding conv and neuron, integer device layers (levels, integer threshold, requantization
    tables; quest/snn/integer_inference.py), the float head."""
    import torch
    import torch.nn.functional as F

    from quest.snn.integer_inference import ScanTables, integer_scan_tables

    if not manifest["integer_inference"]:
        raise ExportError("integer inference needs max pooling (spike inputs) and a quantized membrane in every device layer")
    if not manifest["encoding"]["static"]:
        raise ExportError(f"map inference needs direct encoding, not {manifest['encoding']['name']}")
    steps = manifest["time_steps"]
    x = torch.as_tensor(images, dtype=torch.float32)
    inp: torch.Tensor | None = None
    for layer in manifest["layers"]:
        stride, padding = tuple(layer["stride"]), tuple(layer["padding"])
        if layer["kind"] == "encoding":
            current = F.conv2d(x, torch.from_numpy(arrays[layer["arrays"]["weight"]]), None, stride, padding)
            theta, leak = layer["neuron"]["theta"], layer["neuron"]["leak"]
            soft = layer["neuron"]["reset"] == "soft"
            u = torch.zeros_like(current)
            spikes = []
            for _ in range(steps):
                h = current + u
                s = (h > theta).float()
                u = leak * (h - theta * s) if soft else leak * h * (1.0 - s)
                spikes.append(s)
            out = torch.stack(spikes)
        else:
            t, b = inp.shape[:2]
            # float32 is exact here: 0/1 spikes times integer levels, every partial sum an integer
            # of magnitude <= k*k*C_in*Q < 2^24
            levels = torch.from_numpy(arrays[layer["arrays"]["levels"]].astype(np.float32))
            current = F.conv2d(inp.flatten(0, 1), levels, None, stride, padding)
            current = current.round().long().unflatten(0, (t, b))
            tables = ScanTables(
                threshold=int(layer["threshold_int"]),
                quiet=torch.from_numpy(arrays[layer["arrays"]["requant_quiet"]]),
                fired=torch.from_numpy(arrays[layer["arrays"]["requant_fired"]]),
                soft_reset=layer["neuron"]["reset"] == "soft",
                q_max=int(layer["q_max"]),
            )
            out = integer_scan_tables(current, tables)[0].float()
        if layer["pool"] is not None:
            pool = layer["pool"]
            out = F.max_pool2d(out.flatten(0, 1), pool["kernel_size"], pool["stride"]).unflatten(0, out.shape[:2])
        inp = out
    t, b = inp.shape[:2]
    features = F.adaptive_avg_pool2d(inp.flatten(0, 1), manifest["head"]["pool_out"]).flatten(1)
    for linear in manifest["head"]["linears"]:
        features = F.linear(features, torch.from_numpy(arrays[linear["arrays"]["weight"]]),
                            torch.from_numpy(arrays[linear["arrays"]["bias"]]))
    return features.unflatten(0, (t, b))
