"""The report's PNG figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every function takes plain numbers (no job objects) and the path to write, and returns the path.
"""
from __future__ import annotations

import math
import statistics
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 120
PRECISION_ORDER = ("2", "3", "4", "fp32")
ACTIVITY_TITLES = {
    "spike_rate": "spike rate (spikes per neuron per sample, summed over T)",
    "weight_sparsity": "weight sparsity (share of zero weights)",
    "aor": "AOR (effective / all operations)",
}
LayerValues = Mapping[str, Mapping[str, float]]  # layer -> pattern (or series) -> value


def color(i: int) -> tuple[float, float, float, float]:
    """The i-th colour of a 20-colour cycle (tab10, then tab20's light shades)."""
    cmap = matplotlib.colormaps["tab10" if i < 10 else "tab20"]
    return cmap(i % 10 if i < 10 else (2 * (i % 10) + 1) % 20)


def new_figure(panels: int, width: float, height: float, max_cols: int = 3) -> tuple[Figure, list[Axes]]:
    """A figure with `panels` axes on a grid of at most `max_cols` columns."""
    cols = min(panels, max_cols)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def use_log_scale(ax: Axes, values: Sequence[float], axis: str = "y", spread: float = 50.0) -> None:
    """Log scale when the positive values span more than `spread` times."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > spread:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    colors: Mapping[str, tuple] | None = None,
    highlight: set[str] | frozenset[str] = frozenset(),
) -> None:
    """One cluster of bars per group, one bar per series (None: no bar); highlighted series get a
    thick black edge."""
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        if not ys:
            continue
        ax.bar(
            xs, ys, width * 0.95, label=name,
            color=(colors or {}).get(name, color(i)),
            edgecolor="black" if name in highlight else "none",
            linewidth=1.8 if name in highlight else 0,
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.grid(axis="y", alpha=0.3)


def ordered_precisions(values: set[str]) -> list[str]:
    """Precisions in the paper's order 2, 3, 4, fp32, then any others."""
    return [p for p in PRECISION_ORDER if p in values] + sorted(values - set(PRECISION_ORDER))


# -- cross-run figures -----------------------------------------------------------------------------
def accuracy_figure(
    panels: Mapping[str, Mapping[tuple[str, str], Sequence[float] | str]], path: Path, chance: float | None = None
) -> Path:
    """Fig. 6: test accuracy, x = precision, one bar per neuron, one panel per other setting.

    panels: title -> {(precision, neuron): the accuracies (0..1) of its seeds, or a status word such
    as 'failed'}. A bar is the mean over seeds, its error bar the sample std (with 2 or more seeds);
    `chance` (0..1) draws a dotted line.
    """
    neurons = sorted({n for cells in panels.values() for _, n in cells})
    colors = {n: color(i) for i, n in enumerate(neurons)}
    fig, axes = new_figure(len(panels), 5.5, 4.0)
    for ax, (title, cells) in zip(axes, panels.items()):
        precisions = ordered_precisions({p for p, _ in cells})
        means = {key: 100 * statistics.mean(v) for key, v in cells.items() if not isinstance(v, str) and v}
        series = {n: [means.get((p, n)) for p in precisions] for n in neurons}
        grouped_bars(ax, precisions, series, colors)
        width = 0.8 / max(1, len(neurons))
        for i, n in enumerate(neurons):
            for g, p in enumerate(precisions):
                x = g + (i - (len(neurons) - 1) / 2) * width
                value = cells.get((p, n))
                if isinstance(value, str):
                    ax.text(x, 2, value, ha="center", va="bottom", rotation=90, fontsize=8, color="firebrick")
                elif value:
                    mean = means[(p, n)]
                    std = 100 * statistics.stdev(value) if len(value) > 1 else 0.0
                    if len(value) > 1:
                        ax.errorbar(x, mean, yerr=std, color="black", capsize=3, lw=1)
                    label = f"{mean:.1f}" + (f"\n±{std:.1f}" if len(value) > 1 else "")
                    ax.text(x, mean + std + 1, label, ha="center", va="bottom", fontsize=7)
        if chance is not None:
            ax.axhline(100 * chance, color="dimgray", ls=":", lw=1.2)
        ax.set_ylim(0, 105)
        ax.set_xlim(-0.5, len(precisions) - 0.5)
        ax.set_xlabel("weight precision (bits)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title or "test accuracy by precision and neuron", fontsize=10)
    n_max = max((len(v) for cells in panels.values() for v in cells.values() if not isinstance(v, str)), default=1)
    handles = [Patch(color=colors[n], label=n) for n in neurons]
    if chance is not None:
        handles.append(Line2D([], [], color="dimgray", ls=":", lw=1.2, label=f"chance ({100 * chance:.0f}%)"))
    axes[0].legend(handles=handles, fontsize=8,
                   title="neuron" + (f" (mean ± std over {n_max} seeds)" if n_max > 1 else ""), title_fontsize=8)
    return save(fig, path)


def pareto_figure(
    points: Sequence[tuple[str, float, float]], front: Sequence[int], path: Path, note: str = ""
) -> Path:
    """Accuracy against device energy per sample; the Pareto set in red, joined by a dashed line.

    points: (label, energy fJ per sample, accuracy 0..1); front: indices into points.
    """
    fig, (ax,) = new_figure(1, 7.0, 4.8)
    others = [i for i in range(len(points)) if i not in set(front)]
    for members, style in ((others, dict(s=35, color="steelblue", label="dominated")),
                           (list(front), dict(s=60, color="firebrick", edgecolor="black", label="Pareto set"))):
        if members:
            ax.scatter([points[i][1] for i in members], [100 * points[i][2] for i in members], zorder=3, **style)
    for (energy, acc), labels in coincident_labels(points).items():
        ax.annotate(", ".join(labels), (energy, 100 * acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot([points[i][1] for i in front], [100 * points[i][2] for i in front], color="firebrick", lw=1.2, ls="--")
    use_log_scale(ax, [p[1] for p in points], axis="x", spread=20.0)
    ax.set_xlabel("device energy per sample (fJ): write + read, selected pattern")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy / device energy" + ("\n" + textwrap.fill(f"({note})", 90) if note else ""), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    return save(fig, path)


def coincident_labels(points: Sequence[tuple[str, float, float]]) -> dict[tuple[float, float], list[str]]:
    """Labels of points that print at the same place (energy to 3 digits, accuracy to 0.1%)."""
    out: dict[tuple[float, float], list[str]] = {}
    spots: dict[tuple[str, str], tuple[float, float]] = {}
    for label, energy, acc in points:
        spot = spots.setdefault((f"{energy:.3g}", f"{100 * acc:.1f}"), (energy, acc))
        out.setdefault(spot, []).append(label)
    return out


def energy_by_network_figure(
    write: Mapping[str, Mapping[str, float]], read: Mapping[str, Mapping[str, float]], path: Path
) -> Path:
    """Write and read energy per layer (selected patterns), one bar per network.

    write, read: network label -> layer -> fJ per sample.
    """
    fig, axes = new_figure(2, 6.5, 4.2, max_cols=2)
    for ax, (title, data) in zip(axes, (("write energy per training sample", write),
                                        ("read energy per inference sample", read))):
        layers = list(dict.fromkeys(l for per_layer in data.values() for l in per_layer))
        series = {net: [per_layer.get(l) for l in layers] for net, per_layer in data.items()}
        grouped_bars(ax, layers, series)
        use_log_scale(ax, [v for vs in series.values() for v in vs if v is not None])
        ax.set_ylabel("fJ per sample")
        ax.set_title(title + " (selected pattern)", fontsize=10)
    axes[0].legend(fontsize=7)
    return save(fig, path)


def activity_by_network_figure(data: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> Path:
    """Spike rate, weight sparsity and AOR per layer at the last epoch, one line per network.

    data: network label -> activity key -> layer -> value.
    """
    fig, axes = new_figure(len(ACTIVITY_TITLES), 5.0, 3.8)
    for ax, (key, title) in zip(axes, ACTIVITY_TITLES.items()):
        for i, (net, per_key) in enumerate(data.items()):
            values = per_key.get(key) or {}
            ax.plot(list(values), list(values.values()), marker="o", color=color(i), label=net)
        ax.set_title(title + ", last epoch", fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    legend_outside(fig, axes[0])
    return save(fig, path)


def legend_outside(fig: Figure, ax: Axes) -> None:
    """The legend of `ax`'s lines to the right of the whole figure, where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7)


# -- per-network figures ---------------------------------------------------------------------------
def pattern_bars_figure(
    panels: Mapping[str, LayerValues],
    patterns: Sequence[str],
    selected: set[str],
    states: Mapping[str, str],
    ylabel: str,
    path: Path,
    note: str = "",
    centered: bool = False,
) -> Path:
    """Fig. 7c shape: per panel, a cluster per layer, one bar per pattern (selected: black edge).

    panels: title -> layer -> pattern -> fJ per sample. centered: draw each value minus its
    layer's mean over all patterns, so differences of a fraction of a percent show.
    """
    names = {p: f"P{p} ({states[p]})" if p in states else f"P{p}" for p in patterns}
    colors = {names[p]: color(i) for i, p in enumerate(patterns)}
    fig, axes = new_figure(len(panels), 6.5, 4.0, max_cols=2)
    for ax, (title, by_layer) in zip(axes, panels.items()):
        layers = list(by_layer)
        mean = {l: statistics.mean(by_layer[l].values()) if centered and by_layer[l] else 0.0 for l in layers}
        series = {names[p]: [v - mean[l] if (v := by_layer[l].get(p)) is not None else None for l in layers]
                  for p in patterns}
        grouped_bars(ax, layers, series, colors, highlight={names[p] for p in selected if p in names})
        if centered:
            ax.axhline(0, color="black", lw=0.8)
        else:
            use_log_scale(ax, [v for vs in series.values() for v in vs if v is not None])
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
    axes[0].legend(title="pattern (states of -Q..Q)", fontsize=7, title_fontsize=7, ncols=2 if len(patterns) > 6 else 1)
    if note:
        fig.suptitle(note, fontsize=9)
    return save(fig, path)


def change_shares(counts: Sequence[Sequence[int]]) -> list[list[float]]:
    """Each i -> j count in % of the layer's changes (i != j); the diagonal is NaN."""
    k = len(counts)
    changes = sum(counts[i][j] for i in range(k) for j in range(k) if i != j)
    return [[100 * counts[i][j] / changes if changes and i != j else math.nan for j in range(k)] for i in range(k)]


def transitions_figure(
    layers: Mapping[str, tuple[Sequence[Sequence[int]], float, float]], levels: Sequence[int], path: Path
) -> Path:
    """Fig. 7b: per layer, the share of each i -> j change, in % of all changes.

    Non-adjacent jumps (|i - j| > 1) that happened are outlined in red; on 3 levels every cell is
    written out, on more levels the non-zero ones.
    layers: layer -> (transition counts k x k, share of updates that change, non-adjacent share).
    """
    k = len(levels)
    shares = {layer: change_shares(counts) for layer, (counts, _, _) in layers.items()}
    top = max((v for share in shares.values() for row in share for v in row if not math.isnan(v)), default=100.0)
    vmax = min(100.0, 10.0 * math.ceil(top / 10.0)) or 100.0  # one colour scale for all panels, fitted to the data
    size = 3.4 if k <= 3 else 0.55 * k + 1.2
    fig, axes = new_figure(len(layers), size, size - 0.1, max_cols=5 if k <= 3 else 3)
    for ax, (layer, (counts, changed, non_adjacent)) in zip(axes, layers.items()):
        changes = sum(counts[i][j] for i in range(k) for j in range(k) if i != j)
        share = shares[layer]
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=vmax)
        for i in range(k):
            for j in range(k):
                if i == j:
                    ax.text(j, i, "-", ha="center", va="center", fontsize=8, color="gray")
                    continue
                if abs(i - j) > 1 and counts[i][j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="firebrick", lw=1.5))
                if k <= 3 or counts[i][j]:
                    value = share[i][j] if changes else 0.0
                    ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7 if k <= 3 else 6,
                            color="white" if value > 0.6 * vmax else "black")
        ticks = [f"{v:+d}" if v else "0" for v in levels]
        ax.set_xticks(range(k), ticks)
        ax.set_yticks(range(k), ticks)
        ax.set_xlabel("level after")
        ax.set_ylabel("level before")
        ax.set_title(f"{layer}: % of changes\n{100 * changed:.2f}% of updates change, "
                     f"{100 * non_adjacent:.1f}% non-adjacent", fontsize=8)
    if layers:
        fig.colorbar(image, ax=axes, label="% of the layer's level changes", shrink=0.8)
    return save(fig, path)


def activity_figure(series: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float]]]], path: Path) -> Path:
    """Figs. 8-9: spike rate, weight sparsity and AOR over epochs, one line per layer.

    series: activity key -> layer -> (epochs, values).
    """
    fig, axes = new_figure(len(ACTIVITY_TITLES), 5.0, 3.8)
    for ax, (key, title) in zip(axes, ACTIVITY_TITLES.items()):
        for i, (layer, (xs, ys)) in enumerate((series.get(key) or {}).items()):
            ax.plot(xs, ys, marker="o", color=color(i), label=layer)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    legend_outside(fig, axes[0])
    return save(fig, path)


def accuracy_vs_nonideality(key: str, curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
                            path: Path) -> Path:
    """Test accuracy vs one non-ideality setting: per curve (label -> x, mean, std over chips) the
    mean and a band of +- one std."""
    fig, (ax,) = new_figure(1, 6.0, 4.0)
    for i, (label, (x, mean, std)) in enumerate(curves.items()):
        lo = [m - s for m, s in zip(mean, std)]
        hi = [m + s for m, s in zip(mean, std)]
        ax.plot(x, mean, "o-", color=color(i), label=label)
        ax.fill_between(x, lo, hi, color=color(i), alpha=0.2)
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (mean ± std over chips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)
