"""The exporters' one door to the device wing: which state each weight level is written to, and
what a write between two states costs (REFERENCE.md section 7).

Everything the programming map needs from the device API goes through `cell_mapping`, so that the
device wing can change (e.g. into one device-mapping object) with one function to re-point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from quest.device import DeviceCard, get_pattern, transition_cost_matrix_fJ


@dataclass(frozen=True)
class CellMapping:
    """Weight level -> device state under one R-S pattern, and the RSTD's cheapest write costs."""

    card: str
    states: tuple[str, ...]  # the card's states; a cell's state is an index into this
    initial_state: int  # the state of a fresh (reset) cell
    levels: tuple[int, ...]  # integer weight levels -Q..Q
    level_state: tuple[int, ...]  # level_state[i]: the state holding levels[i]
    pattern_number: int
    pattern: str  # e.g. "P6 (-1->c, 0->a, +1->b)"
    cost_fJ: np.ndarray  # [n, n]: C[i][j], cheapest write energy from state i to state j
    reconstruction: bool  # the card holds values that are not from its cited source

    def states_of(self, levels: np.ndarray) -> np.ndarray:
        """State index (uint8) of every cell holding the integer weight `levels`."""
        lut = np.asarray(self.level_state, dtype=np.uint8)
        return lut[np.asarray(levels, dtype=np.int64) + self.levels[-1]]


def cell_mapping(device: Mapping[str, Any] | DeviceCard, bits: int, pattern: int) -> CellMapping:
    """The mapping of `bits`-bit weights onto the card `device` (a run's `device` config) by pattern
    number `pattern`; raises ValueError naming the reason when the card cannot hold the levels."""
    card = device if isinstance(device, DeviceCard) else DeviceCard.from_config(device)
    chosen = get_pattern(card, bits, int(pattern))
    return CellMapping(
        card=card.name,
        states=tuple(card.states),
        initial_state=card.index(card.initial_state),
        levels=tuple(chosen.levels),
        level_state=tuple(card.index(s) for s in chosen.states),
        pattern_number=int(chosen.number),
        pattern=str(chosen),
        cost_fJ=np.asarray(transition_cost_matrix_fJ(card), dtype=np.float64),
        reconstruction=bool(getattr(card, "reconstruction", False)),
    )
