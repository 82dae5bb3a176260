"""Device and CMOS energy accounting (REFERENCE.md sections 8 and 9).

Write (Algorithm 1), for a layer's level-transition counts N[i][j] (level i -> j, one update):

    P_ij = N_ij / sum(N)
    E_update = sum_ij P_ij * E_p[i][j]        (per weight per update; self transitions cost 0)
    E_batch  = E_update * n_weights            (one optimizer step per batch)
    E_sample = E_batch / batch_size

Read (Algorithm 2): E_read = sum over non-zero levels w of N(w, spike=1) * E_read(state of w).

CMOS comparison (DIET-SNN method, 45 nm, Horowitz):

    E_ANN = sum_l FLOPs_l * E_MAC
    E_SNN = sum_{MAC layers} FLOPs_l * E_MAC + sum_{spiking-input layers} FLOPs_l * r_in,l * E_AC

Inputs may be numpy arrays, lists or (CPU or GPU) torch tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

E_MAC_pJ: float = 4.6  # 32-bit float multiply-accumulate, 45 nm (Horowitz, ISSCC 2014)
E_AC_pJ: float = 0.9  # 32-bit float accumulate, 45 nm


def _np(x: Any) -> np.ndarray:
    """numpy float64 view of an array-like or torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


# ------------------------------------------------------------------------------------- write
def transition_probabilities(counts: Any) -> np.ndarray:
    """P_ij = N_ij / sum(N) (all zeros when there were no counts)."""
    n = _np(counts)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise ValueError(f"transition counts must be a square [k, k] matrix, got {n.shape}")
    if (n < 0).any():
        raise ValueError("transition counts must be >= 0")
    total = n.sum()
    return n / total if total > 0 else np.zeros_like(n)


def write_energy_per_update_fJ(counts: Any, write_matrix_fJ: Any) -> float:
    """E = sum_ij P_ij * E[i][j] (fJ per weight per update); the diagonal counts as 0."""
    p = transition_probabilities(counts)
    e = _np(write_matrix_fJ)
    if e.shape != p.shape:
        raise ValueError(f"write matrix {e.shape} does not match counts {p.shape}")
    e = e.copy()
    np.fill_diagonal(e, 0.0)
    return float((p * e).sum())


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
class NonAdjacentShare:
    """Share of level transitions with |i - j| > 1: of all counts, and of changed weights."""

    of_all: float
    of_changes: float


def non_adjacent_share(counts: Any) -> NonAdjacentShare:
    """sum_{|i-j|>1} N_ij / sum(N), and the same over the off-diagonal (changed) counts."""
    n = _np(counts)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise ValueError(f"transition counts must be a square [k, k] matrix, got {n.shape}")
    i, j = np.indices(n.shape)
    jumps = n[np.abs(i - j) > 1].sum()
    total, changed = n.sum(), n[i != j].sum()
    return NonAdjacentShare(float(jumps / total) if total > 0 else 0.0,
                            float(jumps / changed) if changed > 0 else 0.0)


# -------------------------------------------------------------------------------------- read
def read_energy_fJ(effective_ops_per_level: Any, read_vector: Any, zero_level_index: int,
                   count_zero_reads: bool = False) -> float | np.ndarray:
    """sum over levels w != 0 of N(w) * E_read(w), in fJ (zero weights too if asked).

    ``effective_ops_per_level`` is [..., k]: per level, the (spike = 1, weight = w) operations.
    Leading axes (layers, time steps) are kept.
    """
    ops, e = _np(effective_ops_per_level), _np(read_vector)
    if ops.shape[-1:] != e.shape:
        raise ValueError(f"ops per level {ops.shape} and read vector {e.shape} disagree on k")
    if not 0 <= zero_level_index < e.shape[0]:
        raise ValueError(f"zero_level_index={zero_level_index} outside 0..{e.shape[0] - 1}")
    if not count_zero_reads:
        e = e.copy()
        e[zero_level_index] = 0.0
    out = (ops * e).sum(axis=-1)
    return float(out) if out.ndim == 0 else out


# -------------------------------------------------------------------------------------- CMOS
def conv_flops(k: int, c_in: int, c_out: int, h_out: int, w_out: int) -> int:
    """FLOPs of a k x k convolution = k^2 * C_in * C_out * H_out * W_out (MACs)."""
    return k * k * c_in * c_out * h_out * w_out


def linear_flops(in_features: int, out_features: int) -> int:
    """FLOPs of a linear layer = in_features * out_features (MACs)."""
    return in_features * out_features


@dataclass(frozen=True)
class CmosEnergy:
    """45 nm CMOS energy of the ANN and of the SNN, and their ratio ANN / SNN."""

    ann_pJ: float
    snn_pJ: float
    ratio: float


def cmos_energy_pJ(layers: Iterable[tuple[float, float | None] | tuple[float, float | None, int]],
                   e_mac_pJ: float = E_MAC_pJ, e_ac_pJ: float = E_AC_pJ) -> CmosEnergy:
    """E_ANN = sum FLOPs * E_MAC; E_SNN = MAC layers at E_MAC + spiking layers at r_in * E_AC.

    ``layers``: (FLOPs, input spike rate[, mac_steps]) per layer; rate None marks a non-spiking
    input, costed as MACs on ``mac_steps`` time steps (default 1: the direct-encoding conv, whose
    input is the same at every step, counts once). Rates are summed over time steps
    (REFERENCE.md section 9).
    """
    ann = snn = 0.0
    for i, layer in enumerate(layers):
        flops, rate, *rest = layer
        mac_steps = rest[0] if rest else 1
        if flops < 0 or (rate is not None and rate < 0) or mac_steps < 1:
            raise ValueError(f"layer {i}: FLOPs={flops}, rate={rate}, mac_steps={mac_steps} out of range")
        ann += flops * e_mac_pJ
        snn += flops * e_mac_pJ * mac_steps if rate is None else flops * rate * e_ac_pJ
    return CmosEnergy(ann, snn, ann / snn if snn > 0 else math.inf)
