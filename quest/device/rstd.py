"""RSTD cost matrix: cheapest write energy between any two device states (REFERENCE.md section 7).

The Resistance State Transition Diagram is the directed graph of a card's direct transitions,
weighted by their write energy. A transition that is not direct costs the cheapest path:

    C[i][j] = min over paths i = s_0 -> s_1 -> ... -> s_m = j of sum_t E_write(s_t -> s_{t+1}),
    C[i][i] = 0

(Floyd-Warshall). Every state must reach every other state, or the card cannot hold arbitrary
weight updates.
"""
from __future__ import annotations

import numpy as np

from quest.device.card import DeviceCard, DeviceCardError


def _floyd_warshall(card: DeviceCard) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs cheapest cost [n, n] (inf where unreachable) and next-hop matrix [n, n]."""
    n = card.n_states
    cost = np.full((n, n), np.inf)
    nxt = np.full((n, n), -1, dtype=np.int64)
    np.fill_diagonal(cost, 0.0)
    for i in range(n):
        nxt[i, i] = i
    for (a, b), e in card.write_energy_fJ.items():
        i, j = card.index(a), card.index(b)
        cost[i, j] = e
        nxt[i, j] = j
    for k in range(n):
        via = cost[:, k:k + 1] + cost[k:k + 1, :]
        better = via < cost - 1e-12  # strict: keeps the direct / earlier path on ties
        cost = np.where(better, via, cost)
        nxt = np.where(better, nxt[:, k:k + 1], nxt)
    return cost, nxt


def transition_cost_matrix_fJ(card: DeviceCard) -> np.ndarray:
    """C[i][j]: cheapest write energy (fJ) from state i to state j; C[i][i] = 0.

    Raises DeviceCardError naming the unreachable pairs when the RSTD is not strongly connected.
    """
    cost, _ = _floyd_warshall(card)
    bad = np.argwhere(~np.isfinite(cost))
    if len(bad):
        pairs = [f"'{card.states[i]}' cannot reach '{card.states[j]}'" for i, j in bad]
        shown = "; ".join(pairs[:6]) + (f"; and {len(pairs) - 6} more" if len(pairs) > 6 else "")
        raise DeviceCardError(f"device '{card.name}': {shown} through its transitions; add a "
                              "direct transition or a reset path")
    return cost


def next_hops(card: DeviceCard) -> np.ndarray:
    """N[i][j] [n, n] int64: the state after i on the cheapest write path i -> j (N[i][i] = i).

    Every path follows it, so the rest of the cheapest path i -> j from any state on it is the
    cheapest path from that state (and a prefix i -> s_k costs C[i][s_k]: sub-paths of cheapest
    paths are cheapest). Raises like transition_cost_matrix_fJ on unreachable states."""
    transition_cost_matrix_fJ(card)
    return _floyd_warshall(card)[1]


def cheapest_path(card: DeviceCard, source: str | int, target: str | int) -> list[str]:
    """States visited by the cheapest write path from ``source`` to ``target`` (both included)."""
    i = source if isinstance(source, int) else card.index(source)
    j = target if isinstance(target, int) else card.index(target)
    nxt = next_hops(card)
    path = [i]
    while path[-1] != j:
        path.append(int(nxt[path[-1], j]))
    return [card.states[s] for s in path]
