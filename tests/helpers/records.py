"""Comparing two JSON records (energy.json) to float rounding."""
from __future__ import annotations

import math
from typing import Any


def assert_same_record(a: Any, b: Any, path: str = "", rel: float = 1e-9) -> None:
    """Equal keys, lengths and values; floats equal up to `rel` (relative)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same_record(a[k], b[k], f"{path}.{k}", rel)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_record(x, y, f"{path}[{i}]", rel)
    elif isinstance(a, float):
        assert isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"
