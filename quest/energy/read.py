"""Read energy (Algorithm 2, REFERENCE.md section 9):

    E_read = sum over levels w != 0 of N(w, spike = 1) * E_read(state of w)

(zero weights too when asked: `count_zero_reads`). Inputs may be numpy arrays, lists or tensors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from quest.energy.write import as_float64


def read_energy_fJ(effective_ops_per_level: Any, read_vector: Any, zero_level_index: int,
                   count_zero_reads: bool = False) -> float | np.ndarray:
    """sum over levels w != 0 of N(w) * E_read(w), in fJ (zero weights too if asked).

    ``effective_ops_per_level`` is [..., k]: per level, the (spike = 1, weight = w) operations;
    ``read_vector`` is [k] (one pattern) or [P, k] (P patterns: the result gains a last axis P).
    Leading axes of the ops (layers, time steps) are kept.
    """
    ops, e = as_float64(effective_ops_per_level), as_float64(read_vector)
    if ops.shape[-1] != e.shape[-1]:
        raise ValueError(f"ops per level {ops.shape} and read vector {e.shape} disagree on k")
    if not 0 <= zero_level_index < e.shape[-1]:
        raise ValueError(f"zero_level_index={zero_level_index} outside 0..{e.shape[-1] - 1}")
    if not count_zero_reads:
        e = e.copy()
        e[..., zero_level_index] = 0.0
    out = ops @ e.T if e.ndim == 2 else (ops * e).sum(axis=-1)
    return float(out) if out.ndim == 0 else out
