"""Reading the numbers of one job's energy.json (schema quest.energy/1).

Write energy is per training sample (the last epoch's updates, per_sample_fJ), read energy per
inference sample (the last validation epoch measured); both for one R-S mapping pattern.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quest.report.jobs import Job

ACTIVITY_KEYS = ("spike_rate", "weight_sparsity", "aor")


@dataclass
class EnergySummary:
    """A job's headline energy figures; numbers are None where they do not exist."""

    reason: str | None  # why there is no device energy (not realizable, no energy.json), or None
    selected_pattern: int | None
    write_fJ: float | None  # per sample, summed over layers, selected pattern
    read_fJ: float | None  # per sample, summed over layers, selected pattern
    ann_pJ: float | None
    snn_pJ: float | None
    ann_over_snn: float | None

    @property
    def total_fJ(self) -> float | None:
        if self.write_fJ is None or self.read_fJ is None:
            return None
        return self.write_fJ + self.read_fJ


def _last(items: list[Any] | None) -> dict[str, Any]:
    return items[-1] if items else {}


def write_section(energy: dict[str, Any] | None) -> dict[str, Any]:
    return (energy or {}).get("write") or {}


def last_write_epoch(energy: dict[str, Any] | None) -> dict[str, Any]:
    """The last epoch's write record ({} when none: fp32 runs have no quantized layers)."""
    return _last(write_section(energy).get("epochs"))


def write_windows(energy: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """QUEST's windows of batches (early/middle/final) that hold at least one layer."""
    windows = write_section(energy).get("windows") or {}
    return {name: w for name, w in windows.items() if w.get("layers")}


def activity_epochs(energy: dict[str, Any] | None) -> list[dict[str, Any]]:
    return ((energy or {}).get("activity") or {}).get("epochs") or []


def last_activity(energy: dict[str, Any] | None) -> dict[str, Any]:
    """The last validation epoch's activity record ({} when none)."""
    return _last(activity_epochs(energy))


def activity_by_layer(epoch: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Activity key (spike rate, sparsity, AOR) -> layer -> value, for one epoch."""
    layers = epoch.get("layers") or {}
    return {k: {l: rep[k] for l, rep in layers.items() if rep.get(k) is not None} for k in ACTIVITY_KEYS}


def device_reason(job: Job) -> str | None:
    """Why the job has no device energy numbers, or None when it has them."""
    if job.energy is None:
        return "no energy.json"
    device = job.energy.get("device") or {}
    if device.get("realizable") is False:
        return str(device.get("not_realizable") or f"not realizable on {device.get('name')}")
    return None


def pattern_states(energy: dict[str, Any] | None) -> dict[str, str]:
    """Pattern number -> its states, e.g. '6' -> 'c,a,b' (for legends)."""
    patterns = ((energy or {}).get("device") or {}).get("patterns") or []
    return {str(p["number"]): ",".join(map(str, p.get("states", []))) for p in patterns}


def selected_pattern(job: Job) -> int | None:
    """The run's headline pattern: the write record's choice, else the configured number."""
    chosen = write_section(job.energy).get("selected_pattern")
    if chosen is not None:
        return int(chosen)
    configured = (job.config.get("pattern") or {}).get("selection")
    if isinstance(configured, int):
        return configured
    chosen = last_activity(job.energy).get("selected_pattern")
    return int(chosen) if chosen is not None else None


def write_by_layer(section: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Layer -> pattern -> write fJ per sample, for the layers whose energy is numbers."""
    out = {}
    for layer, rep in (section.get("layers") or {}).items():
        energy = rep.get("write_energy")
        if isinstance(energy, dict):
            out[layer] = {p: e["per_sample_fJ"] for p, e in energy.items()}
    return out


def read_by_layer(epoch: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Layer -> pattern -> read fJ per sample, for the layers whose energy is numbers."""
    out = {}
    for layer, rep in (epoch.get("layers") or {}).items():
        energy = rep.get("read_energy_per_sample_fJ")
        if isinstance(energy, dict):
            out[layer] = {p: float(e) for p, e in energy.items()}
    return out


def total_for(by_layer: dict[str, dict[str, float]], pattern: int | None) -> float | None:
    """Sum over layers for one pattern (None when any layer lacks it, or there are none)."""
    key = str(pattern)
    if pattern is None or not by_layer or any(key not in e for e in by_layer.values()):
        return None
    return sum(e[key] for e in by_layer.values())


def totals_by_pattern(by_layer: dict[str, dict[str, float]]) -> dict[str, float]:
    """Pattern -> sum over layers (patterns every layer has)."""
    if not by_layer:
        return {}
    common = set.intersection(*(set(e) for e in by_layer.values()))
    return {p: sum(e[p] for e in by_layer.values()) for p in sorted(common, key=int)}


def stated_reason(section: dict[str, Any], key: str) -> str | None:
    """The text a monitor wrote in place of a layer's energy numbers (e.g. 'no pattern listed')."""
    texts = [rep[key] for rep in (section.get("layers") or {}).values() if isinstance(rep.get(key), str)]
    return f"energy.json holds no numbers: {texts[0]}" if texts else None


def last_cmos(energy: dict[str, Any] | None) -> dict[str, Any]:
    """The CMOS comparison of the last validation epoch measured ({} when none)."""
    return last_activity(energy).get("cmos") or {}


def summarize(job: Job) -> EnergySummary:
    """The job's headline energy: write and read per sample for its selected pattern, and CMOS."""
    cmos = last_cmos(job.energy)
    reason = device_reason(job)
    pattern = selected_pattern(job) if reason is None else None
    write = total_for(write_by_layer(last_write_epoch(job.energy)), pattern)
    read = total_for(read_by_layer(last_activity(job.energy)), pattern)
    if reason is None and write is None:
        reason = stated_reason(last_write_epoch(job.energy), "write_energy") or "no write energy recorded"
    if reason is None and read is None:
        reason = stated_reason(last_activity(job.energy), "read_energy_per_sample_fJ") or "no read energy recorded"
    return EnergySummary(
        reason=reason,
        selected_pattern=pattern,
        write_fJ=write,
        read_fJ=read,
        ann_pJ=cmos.get("ann_pJ"),
        snn_pJ=cmos.get("snn_pJ"),
        ann_over_snn=cmos.get("ann_over_snn"),
    )


def activity_series(energy: dict[str, Any] | None, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Layer -> (epochs, values of `key`) over the recorded epochs."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for epoch in activity_epochs(energy):
        for layer, rep in (epoch.get("layers") or {}).items():
            if rep.get(key) is not None:
                xs, ys = out.setdefault(layer, ([], []))
                xs.append(int(epoch["epoch"]))
                ys.append(float(rep[key]))
    return out


def transition_shares(section: dict[str, Any]) -> dict[str, tuple[list[list[int]], float, float]]:
    """Layer -> (transition counts k x k, changed share, non-adjacent share of changes)."""
    return {
        layer: (rep["transition_counts"], rep.get("changed_share", 0.0), rep.get("non_adjacent_share_of_changes", 0.0))
        for layer, rep in (section.get("layers") or {}).items()
        if rep.get("transition_counts")
    }


def weight_levels(energy: dict[str, Any] | None, k: int) -> list[int]:
    """The weight levels -Q..Q of a k x k transition matrix."""
    levels = ((energy or {}).get("device") or {}).get("weight_levels") or []
    return list(levels) if len(levels) == k else list(range(-(k // 2), k // 2 + 1))
