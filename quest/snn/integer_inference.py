"""Integer-only inference of a quantized spiking layer (MINT's multiplier-less form).

With the shared scale s = alpha / Q, weights w = s * W (W integer in [-Q, Q]) and membrane
U = s * K (K integer). For binary input spikes the current is s * (sum of integer weights), so in
integer units

    H_t = I_t + K_{t-1}                       (integer add)
    S_t = 1[H_t > theta / s]                  (integer compare with the integer threshold)
    K_t = level of the reset membrane          (compare with a precomputed integer table)

The requantization K = round(Q * clamp(tanh(s * v) / alpha, -1, 1)) of the reset membrane v is
monotone in v, so K = -Q + #{j : v >= c_j} with c_j = (Q / alpha) * atanh(alpha (j + 1/2) / Q),
j = -Q .. Q-1. The leak and (for soft reset) the threshold are folded into the tables, so the scan
needs no multiplier: additions and comparisons only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def requant_boundaries(alpha: float, q_max: int) -> list[float]:
    """c_j = (Q/alpha) atanh(alpha (j + 1/2) / Q), j = -Q..Q-1 (+-inf outside atanh's domain)."""
    bounds = []
    for j in range(-q_max, q_max):
        r = alpha * (j + 0.5) / q_max
        if r >= 1.0:
            bounds.append(math.inf)
        elif r <= -1.0:
            bounds.append(-math.inf)
        else:
            bounds.append(q_max / alpha * math.atanh(r))
    return bounds


def _table(values: list[float], device: torch.device) -> torch.Tensor:
    """Integer H >= c  <=>  H >= ceil(c): thresholds as int64 (infinities clipped far out)."""
    big = 2**62
    return torch.tensor(
        [big if v == math.inf else -big if v == -math.inf else math.ceil(v) for v in values],
        dtype=torch.int64,
        device=device,
    )


@dataclass(frozen=True)
class ScanTables:
    """Everything the integer scan compares with: the integer threshold and the requantization
    tables of the reset membrane (no spike: `quiet`; soft-reset spike: `fired`), each [2Q] int64."""

    threshold: int  # spike when H > threshold, threshold = floor(theta / s)
    quiet: torch.Tensor
    fired: torch.Tensor
    soft_reset: bool
    q_max: int


def scan_tables(theta: float, leak: float, soft_reset: bool, alpha: float, q_max: int,
                device: torch.device | str = "cpu") -> ScanTables:
    """The integer threshold and tables of a layer with threshold theta, leak and scale alpha / Q."""
    theta_int = theta * q_max / alpha
    bounds = requant_boundaries(alpha, q_max)
    # no spike: v = leak * H;  soft spike: v = leak * (H - theta_int);  hard spike: v = 0 -> level 0
    return ScanTables(
        threshold=math.floor(theta_int),  # integer H > theta_int  <=>  H > floor(theta_int)
        quiet=_table([c / leak for c in bounds], torch.device(device)),
        fired=_table([c / leak + theta_int for c in bounds], torch.device(device)),
        soft_reset=soft_reset,
        q_max=q_max,
    )


def integer_scan_tables(current: torch.Tensor, tables: ScanTables) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer currents [T, ...] (int64) -> (spikes [T, ...] bool, membrane levels [T, ...] int64)."""
    quiet, fired = tables.quiet.to(current.device), tables.fired.to(current.device)
    k = torch.zeros_like(current[0])
    spikes, levels = [], []
    for t in range(current.shape[0]):
        h = current[t] + k
        s = h > tables.threshold
        # #{j : h >= c_j} over the non-decreasing table: a binary search, not a [..., 2Q] compare
        k_quiet = torch.searchsorted(quiet, h, right=True) - tables.q_max
        if tables.soft_reset:
            k_fired = torch.searchsorted(fired, h, right=True) - tables.q_max
        else:
            k_fired = torch.zeros_like(h)
        k = torch.where(s, k_fired, k_quiet)
        spikes.append(s)
        levels.append(k)
    return torch.stack(spikes), torch.stack(levels)


def integer_scan(
    current: torch.Tensor, theta: float, leak: float, soft_reset: bool, alpha: float, q_max: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer currents [T, ...] (int64) -> (spikes [T, ...] bool, membrane levels [T, ...] int64)."""
    return integer_scan_tables(current, scan_tables(theta, leak, soft_reset, alpha, q_max, current.device))
