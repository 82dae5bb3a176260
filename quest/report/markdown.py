"""Plain Markdown pieces: tables, numbers, image links."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

DASH = "-"


def cell(value: Any) -> str:
    """A table cell: None as '-', pipes and newlines escaped."""
    if value is None:
        return DASH
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (header row, separator, one line per row)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float | None, digits: int = 4) -> str | None:
    """`digits` significant digits (None stays None)."""
    return None if value is None else f"{value:.{digits}g}"


def mean_std(values: Sequence[float], digits: int = 4) -> str | None:
    """'mean ± std (n = k)' over replicates (sample std); one value: 'value (n = 1)'; none: None."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    if len(values) == 1:
        return f"{values[0]:.{digits}g} (n = 1)"
    return f"{statistics.mean(values):.{digits}g} ± {statistics.stdev(values):.{digits - 2 if digits > 2 else 1}g} (n = {len(values)})"


def pct(value: float | None, digits: int = 1) -> str | None:
    """A share 0..1 as a percentage."""
    return None if value is None else f"{100 * value:.{digits}f}%"


def image(path: Path, root: Path, alt: str) -> str:
    """An image link relative to the report's folder."""
    return f"![{alt}]({path.relative_to(root).as_posix()})"


def code(text: str) -> str:
    return f"`{text}`"
