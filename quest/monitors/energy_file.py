"""energy.json: the run folder's device-energy record, written section by section by the monitors.

Each monitor replaces its own section ("write", "activity") at the end of every epoch, through an
atomic rename, so the file is always whole; results.json's status says whether the run finished.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from quest.results import ENERGY_FILE, read_json, write_json_atomic

SCHEMA = "quest.energy/1"
UNITS = {
    "*_fJ": "femtojoule",
    "*_pJ": "picojoule",
    "spike_rate": "spikes per neuron per sample, summed over the T time steps",
    "aor": "effective operations (spike = 1 and weight != 0) / all operations",
    "weight_sparsity": "fraction of integer weights equal to 0",
    "transition_counts": "rows: level before, columns: level after, levels ordered -Q..Q",
}


def energy_path(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir) / ENERGY_FILE


def update_energy_file(trainer: L.Trainer, section: str, data: Any, ctx: Any) -> None:
    """Replace one section of the run's energy.json (rank 0 only)."""
    if not trainer.is_global_zero:
        return
    path = energy_path(trainer)
    record = read_json(path) or {}
    record.update(schema=SCHEMA, units=UNITS, device=ctx.summary())
    record[section] = data
    write_json_atomic(path, record)


def summarize_energy(record: dict[str, Any] | None) -> dict[str, Any]:
    """Headline figures of an energy.json (last epoch, selected pattern), for results.json.

    Energies are None, with `not_realizable` saying why, when the device cannot host the run.
    """
    if not record:
        return {}
    device = record.get("device", {})
    write = (record.get("write") or {}).get("epochs") or [{}]
    activity = (record.get("activity") or {}).get("epochs") or [{}]
    w_last, a_last = write[-1], activity[-1]
    selected = (record.get("write") or {}).get("selected_pattern") or a_last.get("selected_pattern")
    summary: dict[str, Any] = {
        "device": device.get("name"),
        "realizable": device.get("realizable"),
        "not_realizable": device.get("not_realizable"),
        "selected_pattern": selected,
        "effective_ops_per_sample": sum(l["effective_ops_per_sample"] for l in a_last.get("layers", {}).values()) or None,
        "cmos_snn_pJ": (a_last.get("cmos") or {}).get("snn_pJ"),
        "cmos_ann_pJ": (a_last.get("cmos") or {}).get("ann_pJ"),
        "cmos_ann_over_snn": (a_last.get("cmos") or {}).get("ann_over_snn"),
        "write_energy_per_sample_fJ": None,
        "read_energy_per_sample_fJ": None,
        "device_energy_per_sample_fJ": None,
    }
    key = str(selected) if selected is not None else None
    w_layers = [l["write_energy"] for l in w_last.get("layers", {}).values()]
    r_layers = [l.get("read_energy_per_sample_fJ") for l in a_last.get("layers", {}).values()]
    if key and w_layers and all(isinstance(w, dict) and key in w for w in w_layers):
        summary["write_energy_per_sample_fJ"] = sum(w[key]["per_sample_fJ"] for w in w_layers)
    if key and r_layers and all(isinstance(r, dict) and key in r for r in r_layers):
        summary["read_energy_per_sample_fJ"] = sum(r[key] for r in r_layers)
    if summary["write_energy_per_sample_fJ"] is not None and summary["read_energy_per_sample_fJ"] is not None:
        summary["device_energy_per_sample_fJ"] = summary["write_energy_per_sample_fJ"] + summary["read_energy_per_sample_fJ"]
    return summary


def reselect_pattern(record: dict[str, Any], selection: int | str) -> dict[str, Any]:
    """The same energy record with another headline pattern (patterns change no training)."""
    out = dict(record)
    write = dict(out.get("write") or {})
    activity = dict(out.get("activity") or {})
    device = dict(out.get("device") or {})
    device["pattern_selection"] = selection
    if selection == "best":
        last = (write.get("epochs") or [{}])[-1]
        chosen = last.get("best_pattern")
    else:
        chosen = int(selection)
    if write:
        write["selected_pattern"] = chosen
    if activity.get("epochs"):
        activity["epochs"] = [dict(e, selected_pattern=chosen) for e in activity["epochs"]]
    out.update(device=device, write=write, activity=activity)
    return out


def log_wandb_table(trainer: L.Trainer, key: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Log a per-layer table (and a bar chart of its last column) to W&B when W&B is active."""
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger" and trainer.is_global_zero:
            import wandb

            table = wandb.Table(columns=columns, data=rows)
            lg.experiment.log({
                key: table,
                f"{key}_chart": wandb.plot.bar(table, columns[0], columns[-1], title=f"{key}: {columns[-1]}"),
                "trainer/global_step": trainer.global_step,
            })
