"""The device mapping of one run: where its weight levels sit on the device, and what that costs.

Built once per run from (card, precision bits, neuron leak, pattern selection) and handed to the
energy monitors, which count and delegate every energy formula to it:

    levels -Q..Q (k of them), the RSTD cost matrix C [n, n],
    the patterns evaluated: all n!/(n-k)! when at most `enumeration_limit`, else the configured
    one, or for `best` the cheapest found by search for each transition matrix met,
    E_write [P, k, k], E_p[i][j] = C[state_p(i)][state_p(j)];  E_read [P, k], R_p[i] = E_read(state_p(i)),
    realizability in two parts: the synapse (do the k levels fit the n states? then write and read
    energy are numbers) and the neuron (can the device host its leak?),
    and the one selection rule (`select`).

A run that does not fit still trains: its energies are the sentence "not realizable on <device>:
<reason>" instead of numbers; a neuron the device cannot host is flagged on its own
("neuron not hostable on <device>: <reason>") and leaves the synapse energies in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from quest.device.card import DeviceCard
from quest.device.patterns import (
    ENUMERATION_LIMIT,
    Pattern,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    read_vectors_fJ,
    search_best_pattern,
    write_matrices_fJ,
)
from quest.device.realizability import Realizability, check_realizable, neuron_hostable, synapse_fits
from quest.device.rstd import transition_cost_matrix_fJ
from quest.energy.read import read_energy_fJ
from quest.energy.write import WriteEnergies, write_energies
from quest.levels import weight_levels

# Up to this many patterns, energy.json lists every one (3-state: 6; 7-state 2-bit: 210); above
# it (7-state 3-bit: 5040), all are still evaluated but only the cheapest few, the selected and
# the most expensive are listed.
MAX_LISTED_PATTERNS = 720
LISTED_CHEAPEST = 10


@dataclass
class DeviceMapping:
    """One run's weight levels on one device card; see the module docstring."""

    card: DeviceCard
    bits: int | None
    leak: float
    selection: int | str
    synapse: Realizability
    neuron: Realizability
    searched: bool = False  # too many patterns to enumerate: `best` is found by search
    patterns: list[Pattern] = field(default_factory=list)
    write_fJ: np.ndarray | None = None  # [P, k, k]
    read_fJ: np.ndarray | None = None  # [P, k]
    # The least-write-energy pattern for the transitions counted so far this epoch; the write
    # monitor sets it before each validation, so the read energy is reported for the same pattern.
    write_best: int | None = None

    @classmethod
    def build(cls, card: DeviceCard, bits: int | None, leak: float, selection: int | str = "best",
              enumeration_limit: int = ENUMERATION_LIMIT) -> "DeviceMapping":
        """The mapping of ``bits``-bit weights and neurons of ``leak`` on ``card``."""
        mapping = cls(card, bits, leak, selection, synapse_fits(card, bits), neuron_hostable(card, leak))
        if not mapping.synapse:
            return mapping
        n = count_patterns(card, bits)
        if isinstance(selection, int) and not 1 <= selection <= n:
            raise ValueError(f"pattern.selection={selection}: {card.name} at {bits}-bit has patterns 1..{n}")
        if n <= enumeration_limit:
            mapping._evaluate(enumerate_patterns(card, bits, limit=enumeration_limit))
        elif isinstance(selection, int):
            mapping._evaluate([get_pattern(card, bits, selection)])
        else:
            mapping.searched = True
        return mapping

    @classmethod
    def from_config(cls, device: Mapping[str, Any] | DeviceCard, bits: int | None, neuron: Mapping[str, Any],
                    selection: int | str = "best", enumeration_limit: int = ENUMERATION_LIMIT) -> "DeviceMapping":
        """From the composed config: `device` (a card mapping), `precision.bits`, `neuron`, `pattern.selection`.
        The leak is the one the model's neurons use (quest.snn.neurons.neuron_leak)."""
        from quest.snn.neurons import neuron_leak

        card = device if isinstance(device, DeviceCard) else DeviceCard.from_config(device)
        return cls.build(card, bits, neuron_leak(neuron), selection, enumeration_limit)

    # -- what the run is ---------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[int, ...]:
        """The weight levels -Q..Q (empty for fp32)."""
        return weight_levels(self.bits) if self.bits is not None else ()

    @property
    def zero_index(self) -> int:
        """Index of level 0 in `levels`."""
        return len(self.levels) // 2

    @property
    def realizable(self) -> bool:
        """Synapse and neuron both fit the device."""
        return bool(self.synapse) and bool(self.neuron)

    @property
    def not_realizable(self) -> str:
        """'not realizable on <device>: <every reason>'."""
        return f"not realizable on {self.card.name}: {check_realizable(self.card, self.bits, self.leak).reason}"

    @property
    def synapse_not_realizable(self) -> str:
        """The sentence written in place of energy numbers when the weight levels do not fit."""
        return f"not realizable on {self.card.name}: {self.synapse.reason}"

    @property
    def neuron_not_hostable(self) -> str:
        return f"neuron not hostable on {self.card.name}: {self.neuron.reason}"

    @property
    def cost_fJ(self) -> np.ndarray:
        """The RSTD cost matrix C [n, n]."""
        return transition_cost_matrix_fJ(self.card)

    # -- patterns ----------------------------------------------------------------------------------
    def _evaluate(self, patterns: list[Pattern]) -> None:
        """Add patterns to those evaluated, with their write matrices and read vectors."""
        new = [p for p in patterns if self.index_of(p.number) is None]
        if not new:
            return
        write, read = write_matrices_fJ(self.card, new), read_vectors_fJ(self.card, new)
        self.patterns = self.patterns + new
        self.write_fJ = write if self.write_fJ is None else np.concatenate([self.write_fJ, write])
        self.read_fJ = read if self.read_fJ is None else np.concatenate([self.read_fJ, read])

    def index_of(self, number: int | None) -> int | None:
        return next((i for i, p in enumerate(self.patterns) if p.number == number), None)

    def cheapest(self, totals: np.ndarray) -> int:
        """Number of the pattern of least total energy (`totals` [P] over the patterns evaluated;
        ties: the first)."""
        return self.patterns[int(np.argmin(totals))].number

    def select(self, write_best: int | None = None, read_totals: np.ndarray | None = None) -> int | None:
        """The one selection rule: the configured pattern number; for `best`, the pattern of least
        write energy (`write_best`, else the one noted for this epoch's transitions so far), else,
        with no write counted, the least read energy (`read_totals` [P]); None if none is known."""
        if isinstance(self.selection, int):
            return self.selection
        if write_best is not None:
            return write_best
        if self.write_best is not None:
            return self.write_best
        if read_totals is not None and len(self.patterns):
            return self.cheapest(read_totals)
        return None

    def listed(self, cost: np.ndarray, chosen: int | None) -> list[int]:
        """Indices of the patterns to list in reports, given a cost per pattern."""
        if len(self.patterns) <= MAX_LISTED_PATTERNS:
            return list(range(len(self.patterns)))
        order = np.argsort(cost, kind="stable")
        keep = set(order[:LISTED_CHEAPEST].tolist()) | {int(order[-1])}
        keep |= {i for i, p in enumerate(self.patterns) if p.number == chosen}
        return sorted(keep)

    # -- energies ----------------------------------------------------------------------------------
    def write_energies(self, counts: np.ndarray, n_weights: np.ndarray, batch_size: int) -> WriteEnergies:
        """Write energy of layers' transition counts [L, k, k] (n_weights [L]) under every pattern
        evaluated (quest.energy.write). Searched mappings first evaluate the cheapest pattern for
        these counts: the search minimises sum_ij (sum_l n_l P_l,ij) C[s_i][s_j]."""
        counts = np.asarray(counts, dtype=np.float64)
        if self.searched:
            probs = counts / counts.sum(axis=(1, 2), keepdims=True).clip(min=1)
            load = (probs * np.asarray(n_weights, dtype=np.float64)[:, None, None]).sum(0)
            pattern, _ = search_best_pattern(self.card, self.bits, load)
            self._evaluate([pattern])
        return write_energies(counts, self.write_fJ, n_weights, batch_size)

    def read_energies(self, ops_per_level: np.ndarray, count_zero_reads: bool = False) -> np.ndarray:
        """Read energy [L, P] of layers' effective operations per level [L, k] (quest.energy.read)."""
        return read_energy_fJ(ops_per_level, self.read_fJ, self.zero_index, count_zero_reads)

    # -- the record ----------------------------------------------------------------------------------
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
            "synapse_realizable": bool(self.synapse),
            "synapse_not_realizable": None if self.synapse else self.synapse_not_realizable,
            "neuron_hostable": bool(self.neuron),
            "neuron_not_hostable": None if self.neuron else self.neuron_not_hostable,
        }
