"""R-S mapping patterns: which device state holds which weight level (REFERENCE.md section 7).

For b bits the k = 2^b - 1 weight levels are -Q..Q with Q = 2^(b-1) - 1, ordered from most
negative to most positive. A pattern is an injective map level -> state; there are
n! / (n - k)! of them on n states. Under pattern p:

    E_p[i][j] = C[state(level i)][state(level j)]      (C: RSTD cost matrix, E_p[i][i] = 0)
    R_p[i]    = E_read(state(level i))

and the best pattern for a transition-count matrix N (levels i -> j) minimises

    E(p) = sum_ij P_ij * E_p[i][j],   P = N / sum(N).

Numbering: a card's explicit ``pattern_order`` (QUEST's P1..P6 on the 3-state card) when its
length matches k, otherwise the order of ``itertools.permutations(states, k)``, from 1.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from quest.levels import weight_levels as _weight_levels
from quest.device.card import DeviceCard, DeviceCardError
from quest.energy.write import transition_probabilities
from quest.device.rstd import transition_cost_matrix_fJ

ENUMERATION_LIMIT = 50_000


@dataclass(frozen=True)
class Pattern:
    """Pattern ``number`` (None if unnumbered): ``states[i]`` holds weight level ``levels[i]``."""

    number: int | None
    levels: tuple[int, ...]
    states: tuple[str, ...]

    def state_of(self, level: int) -> str:
        """Device state that stores integer weight ``level``."""
        return self.states[self.levels.index(level)]

    def __str__(self) -> str:
        body = ", ".join(f"{lv:+d}->{s}" if lv else f"0->{s}"
                         for lv, s in zip(self.levels, self.states))
        return f"P{self.number if self.number is not None else '?'} ({body})"


def weight_levels(bits: int) -> tuple[int, ...]:
    """Integer levels -Q..Q for b bits (quest.levels), which a pattern maps onto states."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 2:
        raise ValueError(f"bits={bits!r}: a pattern needs an integer precision >= 2 bits")
    return _weight_levels(bits)


def count_patterns(card: DeviceCard, bits: int) -> int:
    """n! / (n - k)!: injective maps of k = 2^b - 1 levels onto the card's n states (0 if k > n)."""
    return math.perm(card.n_states, len(weight_levels(bits)))


def _uses_explicit_order(card: DeviceCard, k: int) -> bool:
    return card.pattern_order is not None and len(card.pattern_order[0]) == k


def _require_fit(card: DeviceCard, bits: int) -> int:
    k = len(weight_levels(bits))
    if k > card.n_states:
        raise DeviceCardError(f"device '{card.name}': {bits}-bit weights need {k} distinct "
                              f"states; it holds {card.n_states}")
    return k


def enumerate_patterns(card: DeviceCard, bits: int,
                       limit: int = ENUMERATION_LIMIT) -> list[Pattern]:
    """All patterns for ``bits`` in numbering order; raises ValueError above ``limit`` of them."""
    k = _require_fit(card, bits)
    levels = weight_levels(bits)
    m = count_patterns(card, bits)
    if m > limit:
        raise ValueError(f"device '{card.name}': {m} patterns for {bits}-bit weights exceed the "
                         f"enumeration limit {limit}; use search_best_pattern")
    if _uses_explicit_order(card, k):
        orders = card.pattern_order
    else:
        orders = itertools.permutations(card.states, k)
    return [Pattern(n, levels, tuple(s)) for n, s in enumerate(orders, start=1)]


def _rank(n: int, idx: Sequence[int]) -> int:
    """0-based position of the k-permutation ``idx`` of range(n) in itertools order."""
    remaining = list(range(n))
    k, r = len(idx), 0
    for pos, i in enumerate(idx):
        r += remaining.index(i) * math.perm(n - pos - 1, k - pos - 1)
        remaining.remove(i)
    return r


def _unrank(n: int, k: int, r: int) -> list[int]:
    """Inverse of ``_rank``: the r-th (0-based) k-permutation of range(n) in itertools order."""
    remaining = list(range(n))
    out = []
    for pos in range(k):
        block = math.perm(n - pos - 1, k - pos - 1)
        q, r = divmod(r, block)
        out.append(remaining.pop(q))
    return out


def pattern_number(card: DeviceCard, states: Sequence[str]) -> int:
    """Number of the pattern whose levels (most negative first) sit on ``states``."""
    states = tuple(states)
    k = len(states)
    if _uses_explicit_order(card, k):
        return card.pattern_order.index(states) + 1
    return _rank(card.n_states, [card.index(s) for s in states]) + 1


def get_pattern(card: DeviceCard, bits: int, number: int) -> Pattern:
    """Pattern ``number`` (1-based) for ``bits``, by arithmetic unranking (any size)."""
    k = _require_fit(card, bits)
    m = count_patterns(card, bits)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= m:
        raise ValueError(f"device '{card.name}': pattern number {number!r} out of range "
                         f"1..{m} for {bits}-bit weights")
    if _uses_explicit_order(card, k):
        states = card.pattern_order[number - 1]
    else:
        states = tuple(card.states[i] for i in _unrank(card.n_states, k, number - 1))
    return Pattern(number, weight_levels(bits), tuple(states))


def write_matrices_fJ(card: DeviceCard, patterns: Sequence[Pattern]) -> np.ndarray:
    """E_p[i][j] = C[state_p(level i)][state_p(level j)] in fJ, [P, k, k], zero diagonals."""
    idx = np.array([[card.index(s) for s in p.states] for p in patterns], dtype=np.int64)  # [P, k]
    return transition_cost_matrix_fJ(card)[idx[:, :, None], idx[:, None, :]]


def read_vectors_fJ(card: DeviceCard, patterns: Sequence[Pattern]) -> np.ndarray:
    """R_p[i] = E_read(state_p(level i)) in fJ, [P, k]."""
    return np.array([[card.read_energy_fJ[s] for s in p.states] for p in patterns], dtype=np.float64)


def write_matrix_fJ(card: DeviceCard, pattern: Pattern) -> np.ndarray:
    """E_p [k, k] of one pattern (`write_matrices_fJ`)."""
    return write_matrices_fJ(card, [pattern])[0]


def read_vector_fJ(card: DeviceCard, pattern: Pattern) -> np.ndarray:
    """R_p [k] of one pattern (`read_vectors_fJ`)."""
    return read_vectors_fJ(card, [pattern])[0]


def _probabilities(counts: Any, k: int) -> np.ndarray:
    p = transition_probabilities(counts)
    if p.shape != (k, k):
        raise ValueError(f"transition counts have shape {p.shape}; {k} levels need ({k}, {k})")
    return p


def best_pattern(card: DeviceCard, bits: int, transition_counts: Any,
                 enumeration_limit: int = ENUMERATION_LIMIT, restarts: int = 32,
                 seed: int = 0) -> tuple[Pattern, float]:
    """Pattern minimising E(p) = sum_ij P_ij E_p[i][j], and that energy per update (fJ).

    Exact by enumeration when there are at most ``enumeration_limit`` patterns (ties: lowest
    number), otherwise ``search_best_pattern``.
    """
    k = _require_fit(card, bits)
    p = _probabilities(transition_counts, k)
    if count_patterns(card, bits) > enumeration_limit:
        return search_best_pattern(card, bits, p, restarts=restarts, seed=seed)
    patterns = enumerate_patterns(card, bits, limit=enumeration_limit)
    energies = np.einsum("ij,mij->m", p, write_matrices_fJ(card, patterns))
    best = int(np.argmin(energies))
    return patterns[best], float(energies[best])


def search_best_pattern(card: DeviceCard, bits: int, transition_counts: Any,
                        restarts: int = 32, seed: int = 0) -> tuple[Pattern, float]:
    """Local search for the pattern minimising sum_ij P_ij C[s_i][s_j] (a quadratic assignment).

    Restart 0 is a greedy construction (busiest level first, each placed on the state that adds
    the least cost to the levels already placed); the other restarts are random injective maps
    from ``np.random.default_rng(seed)``. Each start descends by best improvement over two moves
    until neither improves: swap the states of two levels, or move one level to an unused state;
    then it is kicked (two random swaps) and descended again, keeping the better map, until
    ``k`` kicks in a row bring no improvement. Deterministic for a given seed; the returned
    pattern carries its permutation-rank number.
    """
    k = _require_fit(card, bits)
    p = _probabilities(transition_counts, k)
    cost = transition_cost_matrix_fJ(card)
    n = card.n_states
    rng = np.random.default_rng(seed)
    moves = _Moves(p, cost)

    best_assign, best_e = None, math.inf
    for r in range(max(1, restarts)):
        start = _greedy(p, cost) if r == 0 else rng.permutation(n)[:k]
        assign, e = moves.descend(start)
        stale = 0
        while stale < k:
            kicked = assign.copy()
            for _ in range(2):
                a, b = rng.choice(k, size=2, replace=False)
                kicked[a], kicked[b] = kicked[b], kicked[a]
            cand, ce = moves.descend(kicked)
            if ce < e - 1e-12:
                assign, e, stale = cand, ce, 0
            else:
                stale += 1
        if e < best_e - 1e-12:
            best_assign, best_e = assign, e
    states = tuple(card.states[i] for i in best_assign)
    return Pattern(pattern_number(card, states), weight_levels(bits), states), best_e


def _greedy(p: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Place levels by decreasing traffic, each on the free state adding the least cost."""
    k, n = p.shape[0], cost.shape[0]
    order = np.argsort(-(p + p.T).sum(axis=1), kind="stable")
    assign = np.full(k, -1)
    placed: list[int] = []
    for lv in order:
        free = [s for s in range(n) if s not in assign]
        adds = [sum(p[lv, o] * cost[s, assign[o]] + p[o, lv] * cost[assign[o], s]
                    for o in placed) for s in free]
        assign[lv] = free[int(np.argmin(adds))]
        placed.append(int(lv))
    return assign


class _Moves:
    """Batched evaluation of all swap / replace-with-unused-state neighbours of a map."""

    def __init__(self, p: np.ndarray, cost: np.ndarray) -> None:
        self.p, self.cost = p, cost
        self.k, self.n = p.shape[0], cost.shape[0]
        self.pairs = np.array([(a, b) for a in range(self.k) for b in range(a + 1, self.k)],
                              dtype=np.int64).reshape(-1, 2)

    def energies(self, assigns: np.ndarray) -> np.ndarray:
        """E for each row of ``assigns`` [m, k]."""
        return np.einsum("ij,mij->m", self.p,
                         self.cost[assigns[:, :, None], assigns[:, None, :]])

    def neighbours(self, assign: np.ndarray) -> np.ndarray:
        swaps = np.repeat(assign[None], len(self.pairs), axis=0)
        rows = np.arange(len(self.pairs))
        swaps[rows, self.pairs[:, 0]] = assign[self.pairs[:, 1]]
        swaps[rows, self.pairs[:, 1]] = assign[self.pairs[:, 0]]
        free = np.setdiff1d(np.arange(self.n), assign)
        if len(free) == 0:
            return swaps
        repl = np.repeat(assign[None], self.k * len(free), axis=0)
        lv = np.repeat(np.arange(self.k), len(free))
        repl[np.arange(len(repl)), lv] = np.tile(free, self.k)
        return np.concatenate([swaps, repl])

    def descend(self, assign: np.ndarray) -> tuple[np.ndarray, float]:
        """Best-improvement descent to a local minimum."""
        assign = np.asarray(assign, dtype=np.int64)
        e = float(self.energies(assign[None])[0])
        while True:
            cand = self.neighbours(assign)
            if len(cand) == 0:
                return assign, e
            ce = self.energies(cand)
            i = int(np.argmin(ce))
            if ce[i] >= e - 1e-12:
                return assign, e
            assign, e = cand[i], float(ce[i])
