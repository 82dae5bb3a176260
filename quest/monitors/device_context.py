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
    ENUMERATION_LIMIT,
    DeviceCard,
    Pattern,
    best_pattern,
    check_realizable,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    read_vector_fJ,
    weight_levels,
    write_matrix_fJ,
)

# Up to this many patterns, energy.json lists every one (3-state: 6; 7-state 2-bit: 210); above
# it (7-state 3-bit: 5040), all are still evaluated but only the cheapest few, the selected and
# the most expensive are listed.
MAX_LISTED_PATTERNS = 720
LISTED_CHEAPEST = 10


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
        if n <= ENUMERATION_LIMIT:
            ctx.set_patterns(enumerate_patterns(card, bits))
        elif isinstance(selection, int):
            ctx.set_patterns([get_pattern(card, bits, selection)])
        return ctx

    def set_patterns(self, patterns: list[Pattern]) -> None:
        """The patterns evaluated, with their write matrices [P, k, k] and read vectors [P, k]."""
        self.patterns = patterns
        self.write_fJ = np.stack([write_matrix_fJ(self.card, p) for p in patterns])
        self.read_fJ = np.stack([read_vector_fJ(self.card, p) for p in patterns])

    def search_best(self, counts: np.ndarray) -> None:
        """Too many patterns to enumerate: find the cheapest for `counts` by search, evaluate it."""
        pattern, _ = best_pattern(self.card, self.bits, counts)
        self.set_patterns([pattern])

    def listed(self, cost: np.ndarray, chosen: int | None) -> list[int]:
        """Indices of the patterns to list in reports, given a cost per pattern."""
        if len(self.patterns) <= MAX_LISTED_PATTERNS:
            return list(range(len(self.patterns)))
        order = np.argsort(cost, kind="stable")
        keep = set(order[:LISTED_CHEAPEST].tolist()) | {int(order[-1])}
        keep |= {i for i, p in enumerate(self.patterns) if p.number == chosen}
        return sorted(keep)

    def index_of(self, number: int | None) -> int | None:
        return next((i for i, p in enumerate(self.patterns) if p.number == number), None)

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
            "pattern_count": len(self.patterns),
            "patterns": [
                {"number": p.number, "states": list(p.states)} for p in self.patterns[:MAX_LISTED_PATTERNS]
            ],
        }
