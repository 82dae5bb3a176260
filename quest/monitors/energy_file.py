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
