"""energy.json, the run's energy record (schema quest.energy/1): the only code that knows its keys.

The monitors write their sections through `update_section`; results.json's energy block
(`headline`), sweep reuse (`reselect_pattern`) and the report (the readers below) read through
this module. Layout::

    schema, units
    device:   the card, precision, realizability (synapse: do the weight levels fit; neuron: can
              the device host it), the patterns evaluated           (DeviceMapping.summary)
    write:    subset, windows_*, selected_pattern,
              epochs[e] / windows[w]: layers.<conv>: transition_counts, changed_share, ...,
                                      write_energy: {pattern: {per_weight_update_fJ, per_batch_fJ,
                                      per_sample_fJ}} | reason; total_per_batch_fJ, best_pattern
              with hardware-aware training only (quest.device.hardware_aware, opt-in):
              nonideal: {hardware_aware_training, note, pattern, chip_seed, noisy_validation,
                         redraw (only when `step`; absent: the chip drawn once per run),
                         nonideal: the card's block in force}
              epochs[e] and windows[w]: layers.<conv>.failed_writes: {write_attempts, moves, failed_moves,
                         failed_energy_fJ, per_weight_update_fJ, per_batch_fJ, per_sample_fJ,
                         off_level_energy_fJ, off_level_per_weight_update_fJ, off_level_per_batch_fJ,
                         off_level_per_sample_fJ}
              epochs[e] and windows[w]: nonideal: {pattern, failed_write_energy_per_sample_fJ,
                         off_level_write_energy_per_sample_fJ}  (quest.monitors.transitions)
    activity: num_batches, epochs[e]: layers.<conv>: spike_rate, ..., read_energy_per_sample_fJ:
              {pattern: fJ} | reason; cmos; selected_pattern
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from quest.results import read_json, write_json_atomic

SCHEMA = "quest.energy/1"
UNITS = {
    "*_fJ": "femtojoule",
    "*_pJ": "picojoule",
    "spike_rate": "spikes per neuron per sample, summed over the T time steps",
    "aor": "effective operations (spike = 1 and weight != 0) / all operations",
    "weight_sparsity": "fraction of integer weights equal to 0",
    "transition_counts": "rows: level before, columns: level after, levels ordered -Q..Q",
}
ACTIVITY_KEYS = ("spike_rate", "weight_sparsity", "aor")
Record = Mapping[str, Any]


# -- writing -----------------------------------------------------------------------------------------
def update_section(path: Path, section: str, data: Any, device: Mapping[str, Any]) -> None:
    """Replace one section ('write' or 'activity') of the energy.json at `path`."""
    record = read_json(path) or {}
    record.update(schema=SCHEMA, units=UNITS, device=dict(device))
    record[section] = data
    write_json_atomic(path, record)


def reselect_pattern(record: Record, selection: int | str, chosen: int | None) -> dict[str, Any]:
    """The same energy record with another headline pattern (patterns change no training):
    configured as `selection`, which selects `chosen` (DeviceMapping.select)."""
    out = dict(record)
    write = dict(out.get("write") or {})
    activity = dict(out.get("activity") or {})
    device = dict(out.get("device") or {})
    device["pattern_selection"] = selection
    if write:
        write["selected_pattern"] = chosen
    if activity.get("epochs"):
        activity["epochs"] = [dict(e, selected_pattern=chosen) for e in activity["epochs"]]
    out.update(device=device, write=write, activity=activity)
    return out


# -- reading: the file ------------------------------------------------------------------------------
def read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why): the file is missing, is not JSON, or is not an energy record."""
    path = Path(path)
    if not path.exists():
        return None, f"no {path.name}"
    data = read_json(path)
    if data is None:
        return None, f"{path.name} could not be read (not JSON)"
    problem = schema_problem(data)
    return (None, f"{path.name} is not an energy record: {problem}") if problem else (data, None)


def schema_problem(data: Any) -> str | None:
    """What makes `data` unreadable as an energy record (the types the readers below rely on), or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for key in ("device", "write", "activity"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is a {type(data[key]).__name__}, not an object"
    for section in ("write", "activity"):
        epochs = (data.get(section) or {}).get("epochs")
        if epochs is None:
            continue
        if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
            return f"{section}.epochs is not a list of objects"
        for e in epochs:
            layers = e.get("layers")
            if layers is not None and not (isinstance(layers, dict) and all(isinstance(v, dict) for v in layers.values())):
                return f"{section}.epochs[{e.get('epoch', '?')}].layers does not map layer names to objects"
    return None


# -- reading: sections -------------------------------------------------------------------------------
def _last(items: list[Any] | None) -> dict[str, Any]:
    return items[-1] if items else {}


def device_block(record: Record | None) -> dict[str, Any]:
    return (record or {}).get("device") or {}


def write_section(record: Record | None) -> dict[str, Any]:
    return (record or {}).get("write") or {}


def last_write_epoch(record: Record | None) -> dict[str, Any]:
    """The last epoch's write record ({} when none: fp32 runs have no quantized layers)."""
    return _last(write_section(record).get("epochs"))


def write_windows(record: Record | None) -> dict[str, dict[str, Any]]:
    """QUEST's windows of batches (early/middle/final) that hold at least one layer."""
    windows = write_section(record).get("windows") or {}
    return {name: w for name, w in windows.items() if w.get("layers")}


def activity_epochs(record: Record | None) -> list[dict[str, Any]]:
    return ((record or {}).get("activity") or {}).get("epochs") or []


def last_activity(record: Record | None) -> dict[str, Any]:
    """The last validation epoch's activity record ({} when none)."""
    return _last(activity_epochs(record))


def last_cmos(record: Record | None) -> dict[str, Any]:
    """The CMOS comparison of the last validation epoch measured ({} when none)."""
    return last_activity(record).get("cmos") or {}


def activity_by_layer(epoch: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Activity key (spike rate, sparsity, AOR) -> layer -> value, for one epoch."""
    layers = epoch.get("layers") or {}
    return {k: {l: rep[k] for l, rep in layers.items() if rep.get(k) is not None} for k in ACTIVITY_KEYS}


def activity_series(record: Record | None, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Layer -> (epochs, values of `key`) over the recorded epochs."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for epoch in activity_epochs(record):
        for layer, rep in (epoch.get("layers") or {}).items():
            if rep.get(key) is not None:
                xs, ys = out.setdefault(layer, ([], []))
                xs.append(int(epoch["epoch"]))
                ys.append(float(rep[key]))
    return out


def transition_shares(section: Mapping[str, Any]) -> dict[str, tuple[list[list[int]], float, float]]:
    """Layer -> (transition counts k x k, changed share, non-adjacent share of changes)."""
    return {
        layer: (rep["transition_counts"], rep.get("changed_share", 0.0), rep.get("non_adjacent_share_of_changes", 0.0))
        for layer, rep in (section.get("layers") or {}).items()
        if rep.get("transition_counts")
    }


def weight_levels(record: Record | None, k: int) -> list[int]:
    """The weight levels -Q..Q of a k x k transition matrix."""
    levels = device_block(record).get("weight_levels") or []
    return list(levels) if len(levels) == k else list(range(-(k // 2), k // 2 + 1))


def pattern_states(record: Record | None) -> dict[str, str]:
    """Pattern number -> its states, e.g. '6' -> 'c,a,b' (for legends)."""
    patterns = device_block(record).get("patterns") or []
    return {str(p["number"]): ",".join(map(str, p.get("states", []))) for p in patterns}


# -- reading: energies -------------------------------------------------------------------------------
def write_by_layer(section: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Layer -> pattern -> write fJ per sample, for the layers whose energy is numbers."""
    out = {}
    for layer, rep in (section.get("layers") or {}).items():
        energy = rep.get("write_energy")
        if isinstance(energy, dict):
            out[layer] = {p: e["per_sample_fJ"] for p, e in energy.items()}
    return out


def read_by_layer(epoch: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Layer -> pattern -> read fJ per sample, for the layers whose energy is numbers."""
    out = {}
    for layer, rep in (epoch.get("layers") or {}).items():
        energy = rep.get("read_energy_per_sample_fJ")
        if isinstance(energy, dict):
            out[layer] = {p: float(e) for p, e in energy.items()}
    return out


def failed_write_energy(epoch: Mapping[str, Any], pattern: int | None,
                        key: str = "failed_write_energy_per_sample_fJ") -> float | None:
    """Write energy per sample of the failed attempts of hardware-aware training in one epoch's write
    record, under `pattern` (None: the epoch has no failed-write record, or it is for another pattern);
    `key=off_level_write_energy_per_sample_fJ`: what its level count missed (0.0 when the record
    predates the key)."""
    block = epoch.get("nonideal") or {}
    if "failed_write_energy_per_sample_fJ" not in block or block.get("pattern") != pattern:
        return None
    return float(block.get(key, 0.0))


def nonideal_training(record: Record | None) -> dict[str, Any]:
    """The non-ideality config hardware-aware training ran with ({} for a run on the ideal device)."""
    return write_section(record).get("nonideal") or {}


def total_for(by_layer: Mapping[str, Mapping[str, float]], pattern: int | None) -> float | None:
    """Sum over layers for one pattern (None when any layer lacks it, or there are none)."""
    key = str(pattern)
    if pattern is None or not by_layer or any(key not in e for e in by_layer.values()):
        return None
    return sum(e[key] for e in by_layer.values())


def totals_by_pattern(by_layer: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Pattern -> sum over layers (patterns every layer has)."""
    if not by_layer:
        return {}
    common = set.intersection(*(set(e) for e in by_layer.values()))
    return {p: sum(e[p] for e in by_layer.values()) for p in sorted(common, key=int)}


def stated_reason(section: Mapping[str, Any], key: str) -> str | None:
    """The text a monitor wrote in place of a layer's energy numbers (e.g. 'no pattern listed')."""
    texts = [rep[key] for rep in (section.get("layers") or {}).values() if isinstance(rep.get(key), str)]
    return f"energy.json holds no numbers: {texts[0]}" if texts else None


def synapse_reason(record: Record | None) -> str | None:
    """Why the record has no synapse energy numbers by its device block (None: it may have them).

    Files written before the two-part realizability (no `synapse_realizable`) read `realizable`.
    """
    device = device_block(record)
    if device.get("synapse_realizable", device.get("realizable")) is False:
        reason = device.get("synapse_not_realizable") or device.get("not_realizable")
        return str(reason or f"not realizable on {device.get('name')}")
    return None


def selected_pattern(record: Record | None, configured: Any = None) -> int | None:
    """The headline pattern: the write record's choice, else the configured number, else the
    activity record's choice."""
    chosen = write_section(record).get("selected_pattern")
    if chosen is not None:
        return int(chosen)
    if isinstance(configured, int) and not isinstance(configured, bool):
        return configured
    chosen = last_activity(record).get("selected_pattern")
    return int(chosen) if chosen is not None else None


def headline(record: Record | None, configured: Any = None) -> dict[str, Any]:
    """Headline figures (last epoch, selected pattern): results.json's energy block and the report's
    numbers. Energies are None where they do not exist; `reason` says why (None when they do)."""
    if not record:
        return {}
    device = device_block(record)
    a_last, cmos = last_activity(record), last_cmos(record)
    reason = synapse_reason(record)
    pattern = selected_pattern(record, configured) if reason is None else None
    write = total_for(write_by_layer(last_write_epoch(record)), pattern)
    failed = failed_write_energy(last_write_epoch(record), pattern)
    off_level = failed_write_energy(last_write_epoch(record), pattern, "off_level_write_energy_per_sample_fJ") or 0.0
    if write is not None and failed is not None:  # the imperfect device's writes: every attempt
        write += failed + off_level
    read = total_for(read_by_layer(a_last), pattern)
    if reason is None and write is None:
        reason = stated_reason(last_write_epoch(record), "write_energy") or "no write energy recorded"
    if reason is None and read is None:
        reason = stated_reason(a_last, "read_energy_per_sample_fJ") or "no read energy recorded"
    return {
        "device": device.get("name"),
        "realizable": device.get("realizable"),
        "not_realizable": device.get("not_realizable"),
        "neuron_not_hostable": device.get("neuron_not_hostable"),
        "selected_pattern": pattern,
        "effective_ops_per_sample": sum(l.get("effective_ops_per_sample", 0) for l in (a_last.get("layers") or {}).values()) or None,
        "cmos_snn_pJ": cmos.get("snn_pJ"),
        "cmos_ann_pJ": cmos.get("ann_pJ"),
        "cmos_ann_over_snn": cmos.get("ann_over_snn"),
        "write_energy_per_sample_fJ": write,
        "read_energy_per_sample_fJ": read,
        "device_energy_per_sample_fJ": None if write is None or read is None else write + read,
        "reason": reason,
        **({"failed_write_energy_per_sample_fJ": failed} if failed is not None else {}),
    }
