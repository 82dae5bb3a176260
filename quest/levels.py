"""Integer weight levels of a b-bit MINT quantizer (REFERENCE.md section 5), written once:

    Q = 2^(b-1) - 1,   levels -Q..Q,   k = 2Q + 1 = 2^b - 1 of them

(2-bit: Q = 1, levels -1, 0, 1; 3-bit: Q = 3, 7 levels; 4-bit: Q = 7, 15 levels). The quantizer,
the device patterns, realizability and the monitors all count levels through these functions.
"""
from __future__ import annotations


def max_level(bits: int) -> int:
    """Q = 2^(b-1) - 1: the largest integer level."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits={bits!r}: a positive integer")
    return 2 ** (bits - 1) - 1


def levels_up_to(q_max: int) -> int:
    """k = 2Q + 1: how many levels -Q..Q there are."""
    return 2 * q_max + 1


def num_levels(bits: int) -> int:
    """k = 2^b - 1: how many levels (and so device states) b-bit weights use."""
    return levels_up_to(max_level(bits))


def weight_levels(bits: int) -> tuple[int, ...]:
    """The levels -Q..Q, most negative first."""
    q = max_level(bits)
    return tuple(range(-q, -q + levels_up_to(q)))
