"""What the monitors need to know about the device: the card, the patterns, realizability.

Built once per run from the composed config (`device`, `precision.bits`, `neuron`, `pattern`).
A precision or neuron the device cannot host does not stop training: the context carries the
reason, and the energy report prints "not realizable on <device>: <reason>" instead of numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from quest.device import (
    DeviceCard,
    Pattern,
    check_realizable,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    read_vector_fJ,
    weight_levels,
    write_matrix_fJ,
)

# Patterns listed one by one in energy.json and logs (3-state: 6; 7-state 2-bit: 210).
MAX_LISTED_PATTERNS = 720


@dataclass
class DeviceContext:
    card: DeviceCard
    bits: int | None
    leak: float
    selection: int | str
    reason: str | None = None  # why the run is not realizable on the device (None: it is)
    patterns: list[Pattern] = field(default_factory=list)
    write_fJ: np.ndarray | None = None  # [P, k, k]
    read_fJ: np.ndarray | None = None  # [P, k]

    @classmethod
    def from_config(
        cls, device: Mapping[str, Any], bits: int | None, neuron: Mapping[str, Any], selection: int | str
    ) -> "DeviceContext":
        card = DeviceCard.from_config(device)
        leak = float(neuron.get("leak") or 1.0)
        fit = check_realizable(card, bits, leak)
        ctx = cls(card, bits, leak, selection, None if fit.ok else fit.reason)
        if bits is None or len(weight_levels(bits)) > card.n_states:
            return ctx
        n = count_patterns(card, bits)
        if isinstance(selection, int) and not 1 <= selection <= n:
            raise ValueError(f"pattern.selection={selection}: {card.name} at {bits}-bit has patterns 1..{n}")
        ctx.patterns = (
            enumerate_patterns(card, bits) if n <= MAX_LISTED_PATTERNS else
            ([get_pattern(card, bits, selection)] if isinstance(selection, int) else [])
        )
        if ctx.patterns:
            ctx.write_fJ = np.stack([write_matrix_fJ(card, p) for p in ctx.patterns])
            ctx.read_fJ = np.stack([read_vector_fJ(card, p) for p in ctx.patterns])
        return ctx

    @property
    def realizable(self) -> bool:
        return self.reason is None

    @property
    def not_realizable(self) -> str:
        return f"not realizable on {self.card.name}: {self.reason}"

    @property
    def levels(self) -> tuple[int, ...]:
        return weight_levels(self.bits) if self.bits is not None else ()

    def summary(self) -> dict[str, Any]:
        """The device block of energy.json."""
        c = self.card
        return {
            "name": c.name,
            "states": list(c.states),
            "initial_state": c.initial_state,
            "leaky": c.leaky,
            "reconstruction": c.reconstruction,
            "reconstruction_note": c.reconstruction_note or None,
            "citation": c.citation,
            "precision_bits": self.bits,
            "weight_levels": list(self.levels),
            "neuron_leak": self.leak,
            "realizable": self.realizable,
            "not_realizable": None if self.realizable else self.not_realizable,
            "pattern_selection": self.selection,
            "patterns": [
                {"number": p.number, "states": list(p.states)} for p in self.patterns
            ],
        }
