"""Programming a chip: a layer's integer weight levels written into imperfect cells (issue 12).

Lightning-free (numpy). Given the levels W of a layer, the level -> state map of the selected R-S
pattern (quest.export.device.CellMapping, the one the programming map uses) and the card's
non-idealities (quest.device.nonideal), `program_layer` draws one chip (seeded) and returns what
its cells hold:

- Writing follows THE WRITE RULE (`write_cells`; quest-eval and hardware-aware training,
  quest.device.hardware_aware, both use it): a cell is written from the state it is in, u_0, to
  its target t along the RSTD's cheapest path u_0 -> u_1 -> ... -> u_m = t (quest.device.rstd),
  one direct transition (hop) at a time. A hop u -> v fails with probability p_fail(u, v) (every
  hop of a stuck cell fails); it is tried once, or with write-verify until it succeeds or
  `max_attempts` is reached, every attempt charged at the hop's write energy E(u -> v). A hop that
  still fails ends the write and the cell stays in the state it reached, u_0 or an intermediate
  u_k. Its energy is C[u_0][u_k] (the successful hops: sub-paths of cheapest paths are cheapest)
  plus the failed attempts, each at its hop's E.
  Programming a chip writes every cell from the card's initial state a, so with no failure a cell
  costs C[a][state(W)], the programming energy of quest.export.programming_map.
- Stuck cells (fraction f, drawn once per chip) are written like the others but never change
  state: their first hop fails (with write-verify it uses up `max_attempts`); they end in the
  stuck state.
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
from quest.device.rstd import next_hops

if TYPE_CHECKING:
    from quest.export.device import CellMapping

# Independent random streams per model (a chip's draws for one model do not depend on another's).
_STUCK, _WRITE, _PROGRAMMING, _VARIATION = range(4)


@dataclass(frozen=True)
class ChipSpec:
    """What writing cells needs from the card and the pattern: the RSTD's hops and the level map."""

    states: tuple[str, ...]
    initial_state: int
    level_of_state: np.ndarray  # [n] float32: the level each state holds (0 for a state holding none)
    next_state: np.ndarray  # [n, n] int64: the state after u on the cheapest path u -> v (rstd.next_hops)
    hop_energy_fJ: np.ndarray  # [n, n] float64: E(u -> v) of each direct transition (0 elsewhere)
    hop_p_fail: np.ndarray  # [n, n] float64: p_fail(u, v) of each direct transition (0 elsewhere)
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
        energy = np.zeros((n, n), dtype=np.float64)
        p_fail = np.zeros((n, n), dtype=np.float64)
        for (u, v), e in card.write_energy_fJ.items():
            energy[card.index(u), card.index(v)] = e
            p_fail[card.index(u), card.index(v)] = wf.p_of(u, v)
        return cls(tuple(card.states), cells.initial_state, level_of_state, next_hops(card), energy, p_fail,
                   np.asarray(cells.cost_fJ, dtype=np.float64), np.asarray(cells.level_state, dtype=np.int64),
                   cells.levels[-1], card.nonideal)

    @property
    def charged_state(self) -> np.ndarray:
        """[n] int64: the state a count of level moves takes a cell in state s to be in,
        state(level(s)); s itself for a state holding a level (the transition monitor's view)."""
        return self.level_state[self.level_of_state.astype(np.int64) + self.q_max]


@dataclass
class CellWrites:
    """What `write_cells` did to each cell (flat arrays, one entry per cell)."""

    states: np.ndarray  # int64: the state each cell ended in
    attempts: np.ndarray  # int64: write attempts, all hops
    hops: np.ndarray  # int64: hops tried (the write stops at its first failed hop)
    failed: np.ndarray  # bool: the write stopped at a failed hop (the cell is not in its target)
    energy_fJ: np.ndarray  # float64: every attempt at its hop's E (successful hops + all failed attempts)
    failed_energy_fJ: np.ndarray  # float64: the failed attempts alone


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


def _rng(seed: int, layer: int, model: int, *step: int) -> np.random.Generator:
    """The numpy stream of one model's draws: key (seed, layer, model), and the step in training."""
    return np.random.default_rng([int(seed), int(layer), model, *map(int, step)])


def _attempts(p: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Attempts used and success of one transition per cell (failure probability p [m]): the first
    success K ~ Geometric(1 - p) by inversion, K = 1 + floor(ln U / ln p); tries min(K, limit)."""
    u = 1.0 - rng.random(p.shape)  # (0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 1.0 + np.floor(np.log(u) / np.log(p))
    k = np.where(p <= 0, 1.0, np.where(p >= 1, np.inf, k))
    return np.minimum(k, limit).astype(np.int64), k <= limit


def write_cells(source: np.ndarray, target: np.ndarray, stuck: np.ndarray | None, spec: ChipSpec,
                attempt_limit: int, rng: np.random.Generator | None) -> CellWrites:
    """THE WRITE RULE (module docstring): cells in states `source` written to states `target` (flat
    int arrays, one entry per cell; a cell with source == target is not written) hop by hop along
    the RSTD's cheapest paths. `stuck` (bool per cell, or None) marks cells whose every hop fails;
    `attempt_limit` is attempts per hop (`max_attempts` with write-verify, else 1).

    Draws: cells are taken in groups of one (source, target) pair, pairs in increasing order of
    source * n + target, cells in index order within a pair; each hop of a pair's path draws once
    for the pair's cells still writing (`_attempts`). `rng` None: no hop can fail (no write model
    is on; `stuck` must be None) and nothing is drawn."""
    source = np.asarray(source, dtype=np.int64).reshape(-1)
    target = np.asarray(target, dtype=np.int64).reshape(-1)
    cells, n = source.size, len(spec.states)
    if rng is None and stuck is not None and stuck.any():
        raise ValueError("write_cells: stuck cells need a random stream (rng)")
    state = source.copy()
    attempts = np.zeros(cells, dtype=np.int64)
    hops = np.zeros(cells, dtype=np.int64)
    failed = np.zeros(cells, dtype=bool)
    energy = np.zeros(cells, dtype=np.float64)
    failed_energy = np.zeros(cells, dtype=np.float64)
    key = source * n + target
    written = np.flatnonzero(source != target)
    order = written[np.argsort(key[written], kind="stable")]
    _, starts = np.unique(key[order], return_index=True)
    for lo, hi in zip(starts, [*starts[1:], order.size]):
        idx = order[lo:hi]
        u, t = int(source[idx[0]]), int(target[idx[0]])
        while idx.size and u != t:
            v = int(spec.next_state[u, t])
            e = spec.hop_energy_fJ[u, v]
            if rng is None:
                used, ok = np.ones(idx.size, dtype=np.int64), np.ones(idx.size, dtype=bool)
            else:
                p = np.full(idx.size, spec.hop_p_fail[u, v])
                if stuck is not None:
                    p = np.where(stuck[idx], 1.0, p)
                used, ok = _attempts(p, attempt_limit, rng)
            attempts[idx] += used
            hops[idx] += 1
            energy[idx] += used * e
            failed_energy[idx] += (used - ok) * e  # a successful hop's retries, or every attempt of a failed one
            failed[idx[~ok]] = True
            idx = idx[ok]
            state[idx] = v
            u = v
    return CellWrites(state, attempts, hops, failed, energy, failed_energy)


def program_layer(levels: np.ndarray, spec: ChipSpec, seed: int, layer: int = 0) -> ProgrammedLayer:
    """Write integer `levels` (any shape, in [-Q, Q]) into one chip (`seed`) as described above:
    every cell from the initial state, by `write_cells`."""
    ni = spec.nonideal
    w = np.asarray(levels, dtype=np.int64)
    flat = w.reshape(-1)
    cells = flat.size
    target = spec.level_state[flat + spec.q_max]
    ideal_energy = float(spec.cost_fJ[spec.initial_state][target].sum())
    source = np.full(cells, spec.initial_state, dtype=np.int64)

    stuck = np.zeros(cells, dtype=bool)
    stuck_state = spec.initial_state if ni.stuck_at.state is None else spec.states.index(ni.stuck_at.state)
    if ni.stuck_at.on:
        stuck = _rng(seed, layer, _STUCK).random(cells) < ni.stuck_at.fraction

    if ni.write_failure.on or ni.stuck_at.on:
        writes = write_cells(source, target, stuck, spec, ni.write_failure.attempt_limit, _rng(seed, layer, _WRITE))
        state = writes.states
        state[stuck] = stuck_state
        energy = float(writes.energy_fJ.sum())
    else:  # no hop fails: C[a][state(W)] per cell, exactly the programming map's energy
        writes = write_cells(source, target, None, spec, 1, None)
        state, energy = target.copy(), ideal_energy
    attempts, tried, failed = int(writes.attempts.sum()), int(writes.hops.sum()), int(writes.failed.sum())

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
