"""Device card: a multi-state NVM device described as data (REFERENCE.md section 7).

A card lists the device's states, the read energy of each state and the write energy of each
*directly reachable* transition (the Resistance State Transition Diagram, RSTD). Cards live in
``conf/device/<name>.yaml`` and are composed by Hydra as the ``device`` config group.

YAML schema (a flat mapping)::

    name: sk_mtj_3state            # equals the file stem
    description: ...
    citation: ...
    leaky: false                   # spontaneous decay to the initial state (LIF neurons)
    reconstruction: false          # true when any number is ours, not published
    reconstruction_note: ""        # required when reconstruction is true
    initial_state: a
    read_voltage_V: 0.1            # optional defaults for the physical read model
    read_time_ns: 10
    states:                        # ordered; read energy per state, either
      - {name: a, read_energy_fJ: 1.812}                          # given directly, or
      - {name: b, resistance_ohm: 1.0e+4}                         # E = V^2 / R * t
      - {name: c, resistance_ohm: 2.0e+4, read_voltage_V: 0.2, read_time_ns: 5}
    transitions:                   # directed, direct transitions only; either
      - {from: a, to: b, energy_fJ: 5.1}                          # given directly, or
      - {from: b, to: c, pulse_voltage_V: 1.5, pulse_current_A: 1.0e-4,
         pulse_width_ns: 50, pulses: 2}                           # E = n * V * I * t
    pattern_order:                 # optional QUEST-style pattern numbering (see patterns.py)
      - {number: 1, states: [a, b, c]}
    nonideal: {...}                # optional device non-idealities, all off by default
                                   # (schema and models: quest/device/nonideal.py)

Unit conversions: with t in ns, E[fJ] = V^2 / R * t * 1e6 and E[fJ] = V * I * t * 1e6
(1 ns = 1e-9 s, 1 J = 1e15 fJ).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from quest.configs import DEVICE_CARDS_DIR as CONF_DIR  # the shipped cards
from quest.device.nonideal import NonIdeality, parse_nonideal

_NS_TO_S = 1e-9
_J_TO_FJ = 1e15

_TOP_KEYS = {
    "name", "description", "citation", "leaky", "reconstruction", "reconstruction_note",
    "initial_state", "states", "transitions", "pattern_order", "read_voltage_V", "read_time_ns",
    "nonideal",
}
_STATE_KEYS = {"name", "read_energy_fJ", "resistance_ohm", "read_voltage_V", "read_time_ns"}
_DIRECT_WRITE_KEYS = {"energy_fJ"}
_PULSE_KEYS = ("pulse_voltage_V", "pulse_current_A", "pulse_width_ns")
_TRANSITION_KEYS = {"from", "to", "energy_fJ", "pulses", *_PULSE_KEYS}


class DeviceCardError(ValueError):
    """A malformed device card; the message is one line naming the card, the key and the fix."""


def read_energy_from_resistance_fJ(resistance_ohm: float, read_voltage_V: float,
                                   read_time_ns: float) -> float:
    """E_read = V^2 / R * t, in fJ (t in ns)."""
    return read_voltage_V ** 2 / resistance_ohm * read_time_ns * _NS_TO_S * _J_TO_FJ


def write_energy_from_pulse_fJ(pulse_voltage_V: float, pulse_current_A: float,
                               pulse_width_ns: float, pulses: int = 1) -> float:
    """E_write = pulses * V * I * t, in fJ (t in ns)."""
    return pulses * pulse_voltage_V * pulse_current_A * pulse_width_ns * _NS_TO_S * _J_TO_FJ


@dataclass(frozen=True)
class DeviceCard:
    """A multi-state device: states, per-state read energy, direct-transition write energy.

    ``write_energy_fJ[(a, b)]`` is the cost of the direct transition a -> b; transitions that are
    not listed are not direct (their cost is the cheapest path, see ``quest.device.rstd``).
    """

    name: str
    states: tuple[str, ...]
    initial_state: str
    read_energy_fJ: Mapping[str, float] = field(hash=False)
    write_energy_fJ: Mapping[tuple[str, str], float] = field(hash=False)
    leaky: bool = False
    description: str = ""
    citation: str = ""
    reconstruction: bool = False
    reconstruction_note: str = ""
    pattern_order: tuple[tuple[str, ...], ...] | None = None
    nonideal: NonIdeality = field(default_factory=NonIdeality, hash=False)  # quest.device.nonideal

    def __post_init__(self) -> None:
        fail = _Fail(self.name if isinstance(self.name, str) and self.name else "<unnamed>")
        if not isinstance(self.name, str) or not self.name.strip():
            fail("name", "must be a non-empty string")
        states = tuple(self.states) if isinstance(self.states, (list, tuple)) else None
        if states is None:
            fail("states", "must be a list of state names")
        for s in states:
            if not isinstance(s, str) or not s:
                fail("states", f"state name {s!r} must be a non-empty string (quote YAML words "
                               "like on/off/yes/no)")
        dups = sorted({s for s in states if states.count(s) > 1})
        if dups:
            fail("states", f"duplicate state name(s) {', '.join(dups)}; names must be unique")
        if len(states) < 2:
            fail("states", f"has {len(states)} state(s); a multi-state device needs at least 2")
        if self.initial_state not in states:
            fail("initial_state", f"{self.initial_state!r} is not a state; allowed: "
                                  f"{', '.join(states)}")
        reads = dict(self.read_energy_fJ)
        for s in states:
            if s not in reads:
                fail(f"states[{s}]", "has no read energy; give read_energy_fJ or "
                                     "resistance_ohm + read_voltage_V + read_time_ns")
        for s, e in reads.items():
            if s not in states:
                fail("read_energy_fJ", f"unknown state {s!r}; allowed: {', '.join(states)}")
            _check_energy(fail, f"states[{s}].read_energy_fJ", e)
        writes = dict(self.write_energy_fJ)
        for key, e in writes.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                fail("transitions", f"key {key!r} must be a (from, to) pair")
            a, b = key
            for role, s in (("from", a), ("to", b)):
                if s not in states:
                    fail(f"transitions[{a}->{b}].{role}",
                         f"unknown state {s!r}; allowed: {', '.join(states)}")
            if a == b:
                fail(f"transitions[{a}->{b}]", "self transition; a state costs nothing to keep")
            _check_energy(fail, f"transitions[{a}->{b}].energy_fJ", e)
        for flag in ("leaky", "reconstruction"):
            if not isinstance(getattr(self, flag), bool):
                fail(flag, f"must be true or false, got {getattr(self, flag)!r}")
        for text in ("description", "citation", "reconstruction_note"):
            if not isinstance(getattr(self, text), str):
                fail(text, f"must be a string, got {type(getattr(self, text)).__name__}")
        if self.reconstruction and not self.reconstruction_note.strip():
            fail("reconstruction_note", "is required when reconstruction is true: say which "
                                        "numbers are not published and how they were chosen")
        order = None
        if self.pattern_order is not None:
            order = _check_pattern_order(fail, states, self.pattern_order)
        object.__setattr__(self, "states", states)
        object.__setattr__(self, "read_energy_fJ",
                           MappingProxyType({s: float(reads[s]) for s in states}))
        object.__setattr__(self, "write_energy_fJ",
                           MappingProxyType({k: float(v) for k, v in writes.items()}))
        object.__setattr__(self, "pattern_order", order)
        if not isinstance(self.nonideal, NonIdeality):
            fail("nonideal", "must be parsed by quest.device.nonideal.parse_nonideal (DeviceCard.from_config)")

    def __reduce__(self):
        """Pickle / deepcopy through plain dicts (mappingproxy does not pickle)."""
        return (self.__class__, (self.name, self.states, self.initial_state,
                                 dict(self.read_energy_fJ), dict(self.write_energy_fJ),
                                 self.leaky, self.description, self.citation,
                                 self.reconstruction, self.reconstruction_note,
                                 self.pattern_order, self.nonideal))

    # ----------------------------------------------------------------------------- accessors
    @property
    def n_states(self) -> int:
        """Number of device states."""
        return len(self.states)

    def index(self, state: str) -> int:
        """Position of ``state`` in ``states``."""
        try:
            return self.states.index(state)
        except ValueError:
            raise DeviceCardError(f"device '{self.name}': unknown state {state!r}; "
                                  f"allowed: {', '.join(self.states)}") from None

    # --------------------------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, config: Any) -> "DeviceCard":
        """Build a card from a mapping (plain dict or OmegaConf DictConfig, as Hydra composes).

        This parses the YAML schema (keys, physical read and write models); what makes a card
        valid (states, energies, transitions, flags, pattern order) is checked once, in
        ``__post_init__``, for cards built either way."""
        cfg = _to_plain(config)
        if not isinstance(cfg, Mapping):
            raise DeviceCardError(f"device card: expected a mapping, got {type(cfg).__name__}")
        name = cfg.get("name")
        fail = _Fail(name if isinstance(name, str) and name else "<unnamed>")
        unknown = sorted(set(cfg) - _TOP_KEYS)
        if unknown:
            fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
        for key in ("name", "states", "initial_state"):
            if key not in cfg:
                fail(key, "is required")
        default_v = _opt_number(fail, "read_voltage_V", cfg.get("read_voltage_V"))
        default_t = _opt_number(fail, "read_time_ns", cfg.get("read_time_ns"))

        raw_states = cfg["states"]
        if not isinstance(raw_states, list) or not raw_states:
            fail("states", "must be a non-empty list of {name: ..., read energy} mappings")
        names: list[str] = []
        reads: dict[str, float] = {}
        for i, entry in enumerate(raw_states):
            where = f"states[{i}]"
            if not isinstance(entry, Mapping):
                fail(where, "must be a mapping like {name: a, read_energy_fJ: 1.8} or "
                            "{name: a, resistance_ohm: 1.0e+4}")
            bad = sorted(set(entry) - _STATE_KEYS)
            if bad:
                fail(f"{where}.{bad[0]}", f"unknown key; allowed: {', '.join(sorted(_STATE_KEYS))}")
            if "name" not in entry:
                fail(f"{where}.name", "is required")
            s = entry["name"]  # its type, uniqueness, ...: checked once, in __post_init__
            names.append(s)
            if not isinstance(s, str):
                continue
            where = f"states[{s}]"
            direct = "read_energy_fJ" in entry
            model = "resistance_ohm" in entry
            if direct and model:
                fail(where, "gives both read_energy_fJ and resistance_ohm; give exactly one")
            if direct:
                for k in ("read_voltage_V", "read_time_ns"):
                    if k in entry:
                        fail(f"{where}.{k}", "only applies with resistance_ohm; remove it or "
                                             "drop read_energy_fJ")
                reads[s] = _number(fail, f"{where}.read_energy_fJ", entry["read_energy_fJ"])
            elif model:
                r = _number(fail, f"{where}.resistance_ohm", entry["resistance_ohm"])
                v = _opt_number(fail, f"{where}.read_voltage_V", entry.get("read_voltage_V"))
                t = _opt_number(fail, f"{where}.read_time_ns", entry.get("read_time_ns"))
                v = default_v if v is None else v
                t = default_t if t is None else t
                if v is None:
                    fail(f"{where}.read_voltage_V", "is required with resistance_ohm (or set a "
                                                    "top-level read_voltage_V)")
                if t is None:
                    fail(f"{where}.read_time_ns", "is required with resistance_ohm (or set a "
                                                  "top-level read_time_ns)")
                if r <= 0:
                    fail(f"{where}.resistance_ohm", f"must be > 0, got {r}")
                if t < 0:
                    fail(f"{where}.read_time_ns", f"must be >= 0, got {t}")
                reads[s] = read_energy_from_resistance_fJ(r, v, t)
            # neither: __post_init__ names the state that has no read energy

        raw_tr = cfg.get("transitions", [])
        if not isinstance(raw_tr, list):
            fail("transitions", "must be a list of {from, to, energy_fJ | pulse model} mappings")
        writes: dict[tuple[str, str], float] = {}
        for i, entry in enumerate(raw_tr):
            where = f"transitions[{i}]"
            if not isinstance(entry, Mapping):
                fail(where, "must be a mapping like {from: a, to: b, energy_fJ: 5.1}")
            bad = sorted(set(entry) - _TRANSITION_KEYS)
            if bad:
                fail(f"{where}.{bad[0]}",
                     f"unknown key; allowed: {', '.join(sorted(_TRANSITION_KEYS))}")
            for role in ("from", "to"):
                if role not in entry:
                    fail(f"{where}.{role}", "is required")
            a, b = entry["from"], entry["to"]  # known states: checked in __post_init__
            where = f"transitions[{a}->{b}]"
            if (a, b) in writes:
                fail(where, "is listed twice; give each direct transition once")
            direct = "energy_fJ" in entry
            pulse = [k for k in _PULSE_KEYS if k in entry]
            if direct and (pulse or "pulses" in entry):
                fail(where, "gives both energy_fJ and a pulse model; give exactly one")
            if direct:
                e = _number(fail, f"{where}.energy_fJ", entry["energy_fJ"])
            elif pulse:
                missing = [k for k in _PULSE_KEYS if k not in entry]
                if missing:
                    fail(f"{where}.{missing[0]}", "is required by the pulse model "
                                                  f"({', '.join(_PULSE_KEYS)})")
                vals = [_number(fail, f"{where}.{k}", entry[k]) for k in _PULSE_KEYS]
                for k, val in zip(_PULSE_KEYS, vals):
                    if val < 0:
                        fail(f"{where}.{k}", f"must be >= 0, got {val}")
                n = entry.get("pulses", 1)
                if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    fail(f"{where}.pulses", f"must be a positive integer, got {n!r}")
                e = write_energy_from_pulse_fJ(*vals, pulses=n)
            else:
                fail(where, "has no write energy; give energy_fJ or pulse_voltage_V + "
                            "pulse_current_A + pulse_width_ns")
            writes[(a, b)] = e

        order = cfg.get("pattern_order")
        if order is not None:
            order = _parse_pattern_order(fail, order)
        nonideal = parse_nonideal(fail, cfg.get("nonideal"), names, list(writes))
        kwargs = {k: cfg[k] for k in ("description", "citation", "leaky", "reconstruction",
                                      "reconstruction_note") if k in cfg and cfg[k] is not None}
        return cls(name=cfg["name"], states=tuple(names), initial_state=cfg["initial_state"],
                   read_energy_fJ=reads, write_energy_fJ=writes, pattern_order=order,
                   nonideal=nonideal, **kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DeviceCard":
        """Load a card from a YAML file; its ``name`` must equal the file stem."""
        import yaml

        path = Path(path)
        with path.open() as fh:
            cfg = yaml.safe_load(fh)
        card = cls.from_config(cfg)
        if card.name != path.stem:
            raise DeviceCardError(f"device card '{card.name}': name must equal the file stem "
                                  f"'{path.stem}' ({path}) so Hydra's device={path.stem} finds it")
        return card


def load_card(name_or_path: str | Path) -> DeviceCard:
    """Load ``conf/device/<name>.yaml`` by name, or a card from an explicit YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise DeviceCardError(f"device card file {str(p)!r} does not exist")
        return DeviceCard.from_yaml(p)
    candidate = CONF_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise DeviceCardError(f"device card '{name_or_path}': no {candidate.name} in {CONF_DIR}; "
                              f"available: {', '.join(available_cards()) or 'none'}")
    return DeviceCard.from_yaml(candidate)


def available_cards() -> list[str]:
    """Names of the cards shipped in conf/device/."""
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml")) if CONF_DIR.is_dir() else []


# ----------------------------------------------------------------------------------- helpers
class _Fail:
    """Raise a one-line DeviceCardError naming the card and the key."""

    def __init__(self, card: str) -> None:
        self.card = card

    def __call__(self, key: str, what: str) -> None:
        raise DeviceCardError(f"device card '{self.card}': {key}: {what}")


def _to_plain(config: Any) -> Any:
    """OmegaConf containers -> plain dict/list; anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return config
    if isinstance(config, (DictConfig, ListConfig)):
        return OmegaConf.to_container(config, resolve=True)
    return config


def _number(fail: _Fail, key: str, value: Any) -> float:
    """A finite float; numeric strings (PyYAML reads 1.0e4 as a string) are accepted."""
    if isinstance(value, bool):
        fail(key, f"must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            fail(key, f"must be a number, got {value!r}")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(key, f"must be a finite number, got {value!r}")
    return float(value)


def _opt_number(fail: _Fail, key: str, value: Any) -> float | None:
    return None if value is None else _number(fail, key, value)


def _check_energy(fail: _Fail, key: str, value: Any) -> None:
    e = _number(fail, key, value)
    if e < 0:
        fail(key, f"energy must be >= 0, got {e}")


def _parse_pattern_order(fail: _Fail, order: Any) -> tuple[tuple[str, ...], ...]:
    """YAML pattern_order -> tuple of state tuples in pattern-number order (1, 2, ...).

    Entries are ``{number: n, states: [...]}`` (numbers 1..m, any listing order) or bare state
    lists (numbered by position).
    """
    if not isinstance(order, list) or not order:
        fail("pattern_order", "must be a non-empty list of {number: n, states: [...]}")
    numbered: dict[int, tuple[str, ...]] = {}
    for i, entry in enumerate(order):
        if isinstance(entry, Mapping):
            bad = sorted(set(entry) - {"number", "states"})
            if bad or "number" not in entry or "states" not in entry:
                fail(f"pattern_order[{i}]", "must be {number: n, states: [s1, s2, ...]}")
            n, states = entry["number"], entry["states"]
        else:
            n, states = i + 1, entry
        if isinstance(n, bool) or not isinstance(n, int):
            fail(f"pattern_order[{i}].number", f"must be an integer, got {n!r}")
        if n in numbered:
            fail(f"pattern_order[{i}].number", f"pattern {n} is numbered twice")
        if not isinstance(states, (list, tuple)):
            fail(f"pattern_order[{i}].states", "must be a list of state names")
        numbered[n] = tuple(states)
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        fail("pattern_order", f"numbers must be 1..{len(numbered)}, got {sorted(numbered)}")
    return tuple(numbered[n] for n in range(1, len(numbered) + 1))


def _check_pattern_order(fail: _Fail, states: Sequence[str],
                         order: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """Every injective assignment of k levels to the states, each exactly once."""
    order = tuple(tuple(p) for p in order)
    k = len(order[0]) if order else 0
    if k == 0:
        fail("pattern_order", "must list at least one pattern of at least one level")
    for n, p in enumerate(order, start=1):
        if len(p) != k:
            fail(f"pattern_order[{n}]", f"has {len(p)} levels; all patterns need {k}")
        for s in p:
            if s not in states:
                fail(f"pattern_order[{n}]", f"unknown state {s!r}; allowed: {', '.join(states)}")
        if len(set(p)) != k:
            fail(f"pattern_order[{n}]", f"maps two levels to one state {list(p)}; "
                                        "states in a pattern must be distinct")
    if len(set(order)) != len(order):
        fail("pattern_order", "lists the same assignment twice")
    expected = math.perm(len(states), k)
    if len(order) != expected:
        missing = next(p for p in itertools.permutations(states, k) if p not in set(order))
        fail("pattern_order", f"lists {len(order)} patterns but {k} levels on {len(states)} "
                              f"states have {expected}; missing e.g. {list(missing)}")
    return order
