"""Programming a chip: a layer's integer weight levels written into imperfect cells (issue 12).

Lightning-free (numpy). Given the levels W of a layer, the level -> state map of the selected R-S
pattern (quest.export.device.CellMapping, the one the programming map uses) and the card's
non-idealities (quest.device.nonideal), `program_layer` draws one chip (seeded) and returns what
its cells hold:

- Writing: every cell starts in the card's initial state a and is written along the RSTD's cheapest
  path a = s_0 -> s_1 -> ... -> s_m = state(W) (quest.device.rstd), one direct transition at a time.
  A transition u -> v fails with probability p_fail(u, v) and the cell stays in u; without
  write-verify it is tried once, with write-verify until it succeeds or `max_attempts` is reached.
  A failed transition ends the cell's write. Every attempt is charged at the transition's write
  energy E(u -> v), so with no failure a cell costs C[a][state(W)], the programming energy of
  quest.export.programming_map.
- Stuck cells (fraction f, drawn once per chip) are written like the others but never change
  state: every transition they try fails (with write-verify, they use up `max_attempts`); they end
  in the stuck state.
- Value: a cell in final state s contributes  W_eff = level(s) * r,  r = max(0, (1 + sigma_prog(s) N)
  * (1 + sigma_d2d(s) N_d2d[cell, s])), the ratio of its perturbed to its nominal state value
  (N_d2d drawn for every state of every cell once per chip). A state that holds no level under
  the pattern (a stuck or half-written cell on a card with more states than levels) reads as 0.
- Read noise acts at each read, not here: `read_sigma` is each cell's sigma_read(s).

Random streams are keyed by (seed, layer, model), so a chip is reproducible and switching one model
on leaves the draws of the others unchanged. With every model off the effective levels are W.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from quest.device.card import DeviceCard
from quest.device.nonideal import NonIdeality
from quest.device.rstd import cheapest_path

if TYPE_CHECKING:
    from quest.export.device import CellMapping

# Independent random streams per model (a chip's draws for one model do not depend on another's).
_STUCK, _WRITE, _PROGRAMMING, _VARIATION = range(4)


@dataclass(frozen=True)
class Hop:
    """One direct transition of a write path: from state `source` to `target` (indices)."""

    source: int
    target: int
    energy_fJ: float
    p_fail: float


@dataclass(frozen=True)
class ChipSpec:
    """What programming needs from the card and the pattern: the write path to each state."""

    states: tuple[str, ...]
    initial_state: int
    level_of_state: np.ndarray  # [n] float32: the level each state holds (0 for a state holding none)
    paths: tuple[tuple[Hop, ...], ...]  # paths[s]: the hops from the initial state to state s
    cost_fJ: np.ndarray  # [n, n] the RSTD cost matrix
    level_state: np.ndarray  # [k] int64: the state of each level -Q..Q
    q_max: int
    nonideal: NonIdeality

    @classmethod
    def build(cls, card: DeviceCard, cells: "CellMapping") -> "ChipSpec":
        n = card.n_states
        wf = card.nonideal.write_failure
        level_of_state = np.zeros(n, dtype=np.float32)
        for level, s in zip(cells.levels, cells.level_state):
            level_of_state[s] = level
        paths = []
        for s in range(n):
            visited = cheapest_path(card, cells.initial_state, s)
            paths.append(tuple(Hop(card.index(u), card.index(v), card.write_energy_fJ[(u, v)], wf.p_of(u, v))
                               for u, v in zip(visited[:-1], visited[1:])))
        return cls(tuple(card.states), cells.initial_state, level_of_state, tuple(paths),
                   np.asarray(cells.cost_fJ, dtype=np.float64), np.asarray(cells.level_state, dtype=np.int64),
                   cells.levels[-1], card.nonideal)


@dataclass
class ProgrammedLayer:
    """One layer of one chip: what its cells hold and what writing them cost."""

    target_states: np.ndarray  # int64, the state each cell should hold (shape of the levels)
    states: np.ndarray  # int64, the state each cell ended in
    effective_levels: np.ndarray  # float32: level(state) * ratio
    read_sigma: np.ndarray  # float32: sigma_read of each cell's state
    attempts: int  # write attempts, all transitions of all cells
    transitions: int  # transitions tried (a cell's write stops at its first failed one)
    failed_transitions: int
    energy_fJ: float  # programming energy, failed attempts included
    ideal_energy_fJ: float  # sum over cells of C[a][state(W)] (no failure)
    stuck_cells: int

    @property
    def wrong_cells(self) -> int:
        """Cells not in their target state."""
        return int((self.states != self.target_states).sum())


def perturbed_levels(levels: Any, ratio: Any) -> Any:
    """W_eff = level(s) * max(0, r): the weight a cell in state s contributes, r the ratio of its
    perturbed to its nominal state value (a negative conductance clipped to 0). numpy arrays or torch
    tensors; the one rule of evaluation (`program_layer`) and hardware-aware training
    (quest.device.hardware_aware)."""
    return levels * ratio.clip(0, None)


def _rng(seed: int, layer: int, model: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(layer), model])


def _attempts(p: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Attempts used and success of one transition per cell (failure probability p [m]): the first
    success K ~ Geometric(1 - p) by inversion, K = 1 + floor(ln U / ln p); tries min(K, limit)."""
    u = 1.0 - rng.random(p.shape)  # (0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 1.0 + np.floor(np.log(u) / np.log(p))
    k = np.where(p <= 0, 1.0, np.where(p >= 1, np.inf, k))
    return np.minimum(k, limit).astype(np.int64), k <= limit


def program_layer(levels: np.ndarray, spec: ChipSpec, seed: int, layer: int = 0) -> ProgrammedLayer:
    """Write integer `levels` (any shape, in [-Q, Q]) into one chip (`seed`) as described above."""
    ni = spec.nonideal
    w = np.asarray(levels, dtype=np.int64)
    flat = w.reshape(-1)
    cells = flat.size
    target = spec.level_state[flat + spec.q_max]
    ideal_energy = float(spec.cost_fJ[spec.initial_state][target].sum())

    stuck = np.zeros(cells, dtype=bool)
    stuck_state = spec.initial_state if ni.stuck_at.state is None else spec.states.index(ni.stuck_at.state)
    if ni.stuck_at.on:
        stuck = _rng(seed, layer, _STUCK).random(cells) < ni.stuck_at.fraction

    state = target.copy()
    attempts = tried = failed = 0
    energy = ideal_energy
    if ni.write_failure.on or ni.stuck_at.on:
        state = np.full(cells, spec.initial_state, dtype=np.int64)
        energy = 0.0
        rng = _rng(seed, layer, _WRITE)
        limit = ni.write_failure.attempt_limit
        for s, path in enumerate(spec.paths):
            idx = np.flatnonzero(target == s)
            for hop in path:
                if not idx.size:
                    break
                p = np.where(stuck[idx], 1.0, hop.p_fail)
                used, ok = _attempts(p, limit, rng)
                attempts += int(used.sum())
                tried += idx.size
                failed += int((~ok).sum())
                energy += float(used.sum()) * hop.energy_fJ
                state[idx[ok]] = hop.target
                idx = idx[ok]
        state[stuck] = stuck_state
    else:
        for s, path in enumerate(spec.paths):
            m = int((target == s).sum())
            attempts += m * len(path)
        tried = attempts

    ratio = np.ones(cells, dtype=np.float64)
    if ni.programming_noise.on:
        sigma = ni.programming_noise.sigmas(spec.states)[state]
        ratio *= 1.0 + sigma * _rng(seed, layer, _PROGRAMMING).standard_normal(cells)
    if ni.variation.on:
        offsets = _rng(seed, layer, _VARIATION).standard_normal((cells, len(spec.states)), dtype=np.float32)
        sigma = ni.variation.sigmas(spec.states)[state]
        ratio *= 1.0 + sigma * offsets[np.arange(cells), state]
    effective = spec.level_of_state[state]
    if ni.programming_noise.on or ni.variation.on:
        effective = perturbed_levels(effective, ratio).astype(np.float32)
    read_sigma = ni.read_noise.sigmas(spec.states).astype(np.float32)[state]
    return ProgrammedLayer(
        target_states=target.reshape(w.shape), states=state.reshape(w.shape),
        effective_levels=np.asarray(effective, dtype=np.float32).reshape(w.shape),
        read_sigma=read_sigma.reshape(w.shape), attempts=attempts, transitions=tried, failed_transitions=failed,
        energy_fJ=energy, ideal_energy_fJ=ideal_energy, stuck_cells=int(stuck.sum()),
    )


def chip_spec(device: Any, bits: int, pattern: int) -> ChipSpec:
    """The spec of a run's `device` config (a card mapping, nonideal block included) at `bits` under
    pattern number `pattern`; the level -> state map is quest.export.device.cell_mapping's."""
    from quest.export.device import cell_mapping

    return ChipSpec.build(DeviceCard.from_config(device), cell_mapping(device, bits, pattern))
