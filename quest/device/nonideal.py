"""Device non-idealities as data: the `nonideal` block of a device card (issue 12).

Every model is indexed by device STATE (the state a cell is in under the selected R-S pattern),
never by weight value, and each is off by default:

    programming_noise  each write lands a cell at its state's value times (1 + sigma_prog(s) * N)
    variation          device-to-device: each cell's value of state s is offset once per chip,
                       times (1 + sigma_d2d(s) * N[cell, s]) (seeded)
    read_noise         each read (every time step) perturbs the cell's value, times (1 + sigma_read(s) * N)
    write_failure      a direct transition u -> v fails (the cell stays in u) with probability p_fail
                       (per card, or per listed transition); with `verify`, each write is retried until
                       it succeeds or `max_attempts` is reached, every attempt charged at the
                       transition's write energy
    stuck_at           a fraction of cells is stuck at a state (the card's initial, i.e. reset, state
                       unless `state` names one), drawn once per chip

The weight a cell contributes is the level's value times the ratio of its perturbed to its nominal
state value; a ratio below 0 (a negative conductance) is clipped to 0 (quest.device.chip).

YAML (every key optional; absent means off)::

    nonideal:
      programming_noise: {sigma: 0.0, per_state: {}}        # per_state: {b: 0.03} overrides sigma for b
      variation: {sigma: 0.0, per_state: {}}
      read_noise: {sigma: 0.0, per_state: {}}
      write_failure: {p_fail: 0.0, per_transition: [], verify: false, max_attempts: 10}
                                               # per_transition: [{from: a, to: b, p_fail: 0.1}]
      stuck_at: {fraction: 0.0, state: null}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

NOISE_MODELS = ("programming_noise", "variation", "read_noise")
MODELS = (*NOISE_MODELS, "write_failure", "stuck_at")
_NOISE_KEYS = {"sigma", "per_state"}
_WRITE_KEYS = {"p_fail", "per_transition", "verify", "max_attempts"}
_STUCK_KEYS = {"fraction", "state"}
DEFAULT_MAX_ATTEMPTS = 10

Fail = Callable[[str, str], None]  # the card's one-line error: fail(key, what) raises


@dataclass(frozen=True)
class RelativeNoise:
    """A relative Gaussian perturbation of a state's value: sigma per state (default `sigma`)."""

    sigma: float = 0.0
    per_state: tuple[tuple[str, float], ...] = ()

    def sigma_of(self, state: str) -> float:
        return dict(self.per_state).get(state, self.sigma)

    def sigmas(self, states: Sequence[str]) -> np.ndarray:
        """sigma of each state [n] (float64)."""
        return np.array([self.sigma_of(s) for s in states], dtype=np.float64)

    @property
    def on(self) -> bool:
        return self.sigma > 0 or any(v > 0 for _, v in self.per_state)

    def summary(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "per_state": dict(self.per_state)}


@dataclass(frozen=True)
class WriteFailure:
    """p_fail of each direct transition (default `p_fail`), and write-verify."""

    p_fail: float = 0.0
    per_transition: tuple[tuple[tuple[str, str], float], ...] = ()
    verify: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def p_of(self, source: str, target: str) -> float:
        return dict(self.per_transition).get((source, target), self.p_fail)

    @property
    def attempt_limit(self) -> int:
        """Attempts per transition: `max_attempts` with write-verify, else one."""
        return self.max_attempts if self.verify else 1

    @property
    def on(self) -> bool:
        return self.p_fail > 0 or any(p > 0 for _, p in self.per_transition)

    def summary(self) -> dict[str, Any]:
        return {"p_fail": self.p_fail, "verify": self.verify, "max_attempts": self.max_attempts,
                "per_transition": [{"from": a, "to": b, "p_fail": p} for (a, b), p in self.per_transition]}


@dataclass(frozen=True)
class StuckAt:
    """A fraction of cells stuck at `state` (None: the card's initial state)."""

    fraction: float = 0.0
    state: str | None = None

    @property
    def on(self) -> bool:
        return self.fraction > 0

    def summary(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "state": self.state}


@dataclass(frozen=True)
class NonIdeality:
    """A card's non-idealities; the default is the ideal device."""

    programming_noise: RelativeNoise = field(default_factory=RelativeNoise)
    variation: RelativeNoise = field(default_factory=RelativeNoise)
    read_noise: RelativeNoise = field(default_factory=RelativeNoise)
    write_failure: WriteFailure = field(default_factory=WriteFailure)
    stuck_at: StuckAt = field(default_factory=StuckAt)

    @property
    def ideal(self) -> bool:
        """Every model off."""
        return not any(getattr(self, m).on for m in MODELS)

    def summary(self) -> dict[str, Any]:
        """The block as plain data (for JSON records)."""
        return {m: getattr(self, m).summary() for m in MODELS}


def parse_nonideal(fail: Fail, raw: Any, states: Sequence[str],
                   transitions: Sequence[tuple[str, str]]) -> NonIdeality:
    """The card's `nonideal` mapping -> NonIdeality; a bad value raises through `fail` (one line)."""
    if raw is None:
        return NonIdeality()
    if not isinstance(raw, Mapping):
        fail("nonideal", f"must be a mapping of {', '.join(MODELS)}")
    bad = sorted(set(raw) - set(MODELS))
    if bad:
        fail(f"nonideal.{bad[0]}", f"unknown model; allowed: {', '.join(MODELS)}")
    parsed: dict[str, Any] = {}
    for name in NOISE_MODELS:
        block = _block(fail, f"nonideal.{name}", raw.get(name), _NOISE_KEYS)
        sigma = _fraction(fail, f"nonideal.{name}.sigma", block.get("sigma", 0.0), upper=None)
        per = block.get("per_state") or {}
        if not isinstance(per, Mapping):
            fail(f"nonideal.{name}.per_state", "must be a mapping {state: sigma}")
        for s in per:
            if s not in states:
                fail(f"nonideal.{name}.per_state.{s}", f"unknown state; allowed: {', '.join(states)}")
        parsed[name] = RelativeNoise(sigma, tuple(
            (s, _fraction(fail, f"nonideal.{name}.per_state.{s}", per[s], upper=None)) for s in states if s in per))

    block = _block(fail, "nonideal.write_failure", raw.get("write_failure"), _WRITE_KEYS)
    p_fail = _fraction(fail, "nonideal.write_failure.p_fail", block.get("p_fail", 0.0))
    per_tr: dict[tuple[str, str], float] = {}
    entries = block.get("per_transition") or []
    if not isinstance(entries, list):
        fail("nonideal.write_failure.per_transition", "must be a list of {from, to, p_fail}")
    for i, entry in enumerate(entries):
        where = f"nonideal.write_failure.per_transition[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"from", "to", "p_fail"}:
            fail(where, "must be {from: a, to: b, p_fail: 0.1}")
        pair = (entry["from"], entry["to"])
        if pair not in transitions:
            listed = ", ".join(f"{a}->{b}" for a, b in transitions)
            fail(where, f"{pair[0]}->{pair[1]} is not a direct transition of the card; allowed: {listed}")
        if pair in per_tr:
            fail(where, f"{pair[0]}->{pair[1]} is listed twice")
        per_tr[pair] = _fraction(fail, f"{where}.p_fail", entry["p_fail"])
    verify = block.get("verify", False)
    if not isinstance(verify, bool):
        fail("nonideal.write_failure.verify", f"must be true or false, got {verify!r}")
    limit = block.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        fail("nonideal.write_failure.max_attempts", f"must be a positive integer, got {limit!r}")
    parsed["write_failure"] = WriteFailure(p_fail, tuple(per_tr.items()), verify, limit)

    block = _block(fail, "nonideal.stuck_at", raw.get("stuck_at"), _STUCK_KEYS)
    state = block.get("state")
    if state is not None and state not in states:
        fail("nonideal.stuck_at.state", f"unknown state {state!r}; allowed: {', '.join(states)} "
                                        "(or null: the initial state)")
    parsed["stuck_at"] = StuckAt(_fraction(fail, "nonideal.stuck_at.fraction", block.get("fraction", 0.0)), state)
    return NonIdeality(**parsed)


def _block(fail: Fail, key: str, raw: Any, allowed: set[str]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        fail(key, f"must be a mapping with keys {', '.join(sorted(allowed))}")
    bad = sorted(set(raw) - allowed)
    if bad:
        fail(f"{key}.{bad[0]}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return raw


def _fraction(fail: Fail, key: str, value: Any, upper: float | None = 1.0) -> float:
    """A number >= 0 (and <= `upper`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        fail(key, f"must be a finite number, got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        fail(key, f"must be in [0, {upper}], got {value}" if upper is not None else f"must be >= 0, got {value}")
    return float(value)
