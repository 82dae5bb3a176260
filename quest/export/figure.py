"""The programming-energy figure of a map: per device layer, writing onto fresh cells (and, with a
re-programming record, moving from an older map), drawn with matplotlib's Agg canvas."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def programming_energy_figure(manifest: dict[str, Any], path: str | Path) -> Path:
    """Bars of fresh programming energy (pJ) per layer; re-programming beside them when present."""
    fresh = manifest["programming_energy_fJ"]["layers"]
    again = (manifest.get("reprogramming") or {}).get("layers")
    names = list(fresh)
    fig = Figure(figsize=(6.0, 3.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.4 if again else 0.7
    xs = range(len(names))
    ax.bar([x - (width / 2 if again else 0) for x in xs], [fresh[n] / 1e3 for n in names], width,
           label=f"fresh cells, total {manifest['programming_energy_fJ']['total'] / 1e3:.1f} pJ")
    if again:
        total = manifest["reprogramming"]["total_fJ"] / 1e3
        ax.bar([x + width / 2 for x in xs], [again[n]["energy_fJ"] / 1e3 for n in names], width,
               label=f"re-programming from {Path(manifest['reprogramming']['from']).name}, total {total:.1f} pJ")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("write energy (pJ)")
    dev = manifest["device"]
    ax.set_title(f"Programming energy on {dev['card']}, pattern {dev['pattern_text']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
