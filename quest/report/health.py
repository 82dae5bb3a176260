"""Layer health in the report: silent fraction, spike rate, membrane saturation and alpha per layer,
from a run's layer_health.json (quest/monitors/layer_health.py), at init and after every epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from quest.monitors.layer_health import HEALTH_FILE
from quest.report.figures import color, new_figure, save
from quest.report.jobs import Job
from quest.results import read_json

PANELS = {
    "silent_fraction": "silent neurons (fraction)",
    "spike_rate_per_step": "spike rate (per neuron per step)",
    "saturation_share": "membrane at the clamp |tanh U| >= alpha (share)",
    "alpha": "alpha (shared scale)",
}


def health_history(job: Job) -> list[dict[str, Any]]:
    """The job's layer-health entries (init first, then epochs), or [] when it has none."""
    record = read_json(job.folder / HEALTH_FILE) or {}
    return list(record.get("history") or [])


def health_series(history: list[dict[str, Any]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """layer -> (x, values) for one key; x = epoch (0-based), init at -1; layers without the key left out."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in sorted(history, key=lambda h: h["epoch"]):
        for layer, values in entry["layers"].items():
            if values.get(key) is not None:
                xs, ys = series.setdefault(layer, ([], []))
                xs.append(int(entry["epoch"]))
                ys.append(float(values[key]))
    return series


def health_figure(history: list[dict[str, Any]], path: Path) -> Path:
    """Four panels over epochs (init at -1), one line per layer."""
    fig, axes = new_figure(len(PANELS), 5.0, 3.8, max_cols=2)
    for ax, (key, title) in zip(axes, PANELS.items()):
        for i, (layer, (xs, ys)) in enumerate(health_series(history, key).items()):
            ax.plot(xs, ys, marker="o", color=color(i), label=layer)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (-1: init)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save(fig, path)
