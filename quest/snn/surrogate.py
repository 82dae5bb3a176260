"""Surrogate derivatives dS/dH of the Heaviside spike S = 1[H > theta].

Each function takes z = H - theta and returns the surrogate derivative at z.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

SurrogateFn = Callable[[torch.Tensor], torch.Tensor]


def triangle(z: torch.Tensor) -> torch.Tensor:
    """QUEST/MINT default: dS/dH = max(0, 1 - |H - theta|)."""
    return (1.0 - z.abs()).clamp_min(0.0)


def sigmoid(z: torch.Tensor, slope: float = 4.0) -> torch.Tensor:
    """dS/dH = k * sigma(k z) * (1 - sigma(k z)), k = 4 (SpikingJelly's default)."""
    s = torch.sigmoid(slope * z)
    return slope * s * (1.0 - s)


def atan(z: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """dS/dH = (alpha / 2) / (1 + (pi / 2 * alpha * z)^2), alpha = 2 (SpikingJelly's default)."""
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * z) ** 2)


SURROGATES: dict[str, SurrogateFn] = {"triangle": triangle, "sigmoid": sigmoid, "atan": atan}


def get_surrogate(name: str) -> SurrogateFn:
    """Look a surrogate up by name; unknown names raise one clear line."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(f"neuron.surrogate={name!r}: allowed {sorted(SURROGATES)}") from None
