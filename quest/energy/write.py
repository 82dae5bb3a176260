"""Write energy (Algorithm 1, REFERENCE.md section 8), for level-transition counts N[i][j]:

    P_ij     = N_ij / sum(N)
    E_update = sum_ij P_ij * E_p[i][j]        (per weight per update; self transitions cost 0)
    E_batch  = E_update * n_weights            (one optimizer step per batch)
    E_sample = E_batch / batch_size

Inputs may be numpy arrays, lists or (CPU or GPU) torch tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def as_float64(x: Any) -> np.ndarray:
    """numpy float64 view of an array-like or torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def transition_probabilities(counts: Any) -> np.ndarray:
    """P_ij = N_ij / sum(N) (all zeros when there were no counts)."""
    n = as_float64(counts)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise ValueError(f"transition counts must be a square [k, k] matrix, got {n.shape}")
    if (n < 0).any():
        raise ValueError("transition counts must be >= 0")
    total = n.sum()
    return n / total if total > 0 else np.zeros_like(n)


def write_energy_per_update_fJ(counts: Any, write_matrix_fJ: Any) -> float:
    """E = sum_ij P_ij * E[i][j] (fJ per weight per update); the diagonal counts as 0
    (`write_energies` for one layer and one pattern)."""
    p = transition_probabilities(counts)  # checks the counts
    e = as_float64(write_matrix_fJ)
    if e.shape != p.shape:
        raise ValueError(f"write matrix {e.shape} does not match counts {p.shape}")
    return float(write_energies(as_float64(counts)[None], e[None], [1.0], 1).per_weight_update_fJ[0, 0])


@dataclass(frozen=True)
class LayerWriteEnergy:
    """A layer's write energy: per weight per update, per batch (all weights), per sample."""

    per_weight_update_fJ: float
    per_batch_fJ: float
    per_sample_fJ: float


def layer_write_energy(counts: Any, write_matrix_fJ: Any, n_weights: int,
                       batch_size: int) -> LayerWriteEnergy:
    """E_update, E_batch = E_update * n_weights, E_sample = E_batch / batch_size."""
    if n_weights < 0 or batch_size <= 0:
        raise ValueError(f"n_weights={n_weights} must be >= 0 and batch_size={batch_size} > 0")
    e = write_energy_per_update_fJ(counts, write_matrix_fJ)
    return LayerWriteEnergy(e, e * n_weights, e * n_weights / batch_size)


@dataclass(frozen=True)
class WriteEnergies:
    """Every layer under every pattern at once: arrays [layers, patterns] in fJ, and the
    per-batch totals over layers [patterns]."""

    per_weight_update_fJ: np.ndarray
    per_batch_fJ: np.ndarray
    per_sample_fJ: np.ndarray
    total_per_batch_fJ: np.ndarray


def write_energies(counts: Any, write_fJ: Any, n_weights: Any, batch_size: int) -> WriteEnergies:
    """`layer_write_energy` for L layers' counts [L, k, k] under P patterns' matrices [P, k, k]:
    E_update[l, p] = sum_ij P_l,ij E_p[i][j]; E_batch = E_update n_weights[l]; E_sample = E_batch / B;
    the total per batch of pattern p sums E_batch over the layers. The diagonal counts as 0."""
    n = as_float64(counts)
    e = as_float64(write_fJ).copy()
    if n.ndim != 3 or e.ndim != 3 or n.shape[1:] != e.shape[1:]:
        raise ValueError(f"counts {n.shape} and write matrices {e.shape} must be [L, k, k] and [P, k, k]")
    e[:, np.arange(e.shape[1]), np.arange(e.shape[1])] = 0.0
    probs = n / n.sum(axis=(1, 2), keepdims=True).clip(min=1)
    per_update = np.einsum("lij,pij->lp", probs, e)
    per_batch = per_update * as_float64(n_weights)[:, None]
    return WriteEnergies(per_update, per_batch, per_batch / max(1, batch_size), per_batch.sum(0))


@dataclass(frozen=True)
class NonAdjacentShare:
    """Share of level transitions with |i - j| > 1: of all counts, and of changed weights."""

    of_all: float
    of_changes: float


def non_adjacent_share(counts: Any) -> NonAdjacentShare:
    """sum_{|i-j|>1} N_ij / sum(N), and the same over the off-diagonal (changed) counts."""
    n = as_float64(counts)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise ValueError(f"transition counts must be a square [k, k] matrix, got {n.shape}")
    i, j = np.indices(n.shape)
    jumps = n[np.abs(i - j) > 1].sum()
    total, changed = n.sum(), n[i != j].sum()
    return NonAdjacentShare(float(jumps / total) if total > 0 else 0.0,
                            float(jumps / changed) if changed > 0 else 0.0)
