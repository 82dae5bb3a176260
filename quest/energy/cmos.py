"""45 nm CMOS comparison (DIET-SNN method, Horowitz; REFERENCE.md section 9):

    E_ANN = sum_l FLOPs_l * E_MAC
    E_SNN = sum_{MAC layers} FLOPs_l * E_MAC + sum_{spiking-input layers} FLOPs_l * r_in,l * E_AC
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

E_MAC_pJ: float = 4.6  # 32-bit float multiply-accumulate, 45 nm (Horowitz, ISSCC 2014)
E_AC_pJ: float = 0.9  # 32-bit float accumulate, 45 nm


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
