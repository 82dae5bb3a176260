"""Where the monitors' sections go: the run's energy.json (through quest.energy.record, rank 0
only) and, when W&B is active, per-layer tables."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from quest.device.mapping import DeviceMapping
from quest.energy.record import update_section
from quest.results import ENERGY_FILE


def energy_path(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir) / ENERGY_FILE


def update_energy_file(trainer: L.Trainer, section: str, data: Any, mapping: DeviceMapping) -> None:
    """Replace one section of the run's energy.json (rank 0 only)."""
    if trainer.is_global_zero:
        update_section(energy_path(trainer), section, data, mapping.summary())


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


def history_to_state(history: list[dict[str, Any]]) -> str:
    """A monitor's history as JSON text for its checkpoint state (numpy numbers become Python ones,
    so the checkpoint loads with torch.load(weights_only=True))."""
    return json.dumps(history, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def history_from_state(text: str | None) -> list[dict[str, Any]]:
    return json.loads(text) if text else []
