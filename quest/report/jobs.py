"""The jobs under a report folder, and their grouping into trained networks.

A job is one run folder (one results.json, maybe an energy.json). A network is what training
produced: jobs whose configurations differ only in the R-S mapping pattern (`pattern.selection`),
or in settings that change no training (output paths, loggers, progress bars), are one network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quest.energy.record import read_record
from quest.not_training import ECHOES, NOT_TRAINING, changes_training
from quest.results import ENERGY_FILE, KILLED_NOTE, RESULTS_FILE, observed_status, read_json

REPORT_FIGS = "report_figs"

# Override keys that `settings` replaces by the names of precision and neuron.
ALIASES = ("precision", "precision.bits", "neuron", "neuron.name")


@dataclass
class Job:
    """One run folder: its results.json (always) and energy.json (when written)."""

    folder: Path
    name: str
    results: dict[str, Any]
    energy: dict[str, Any] | None
    energy_problem: str | None = None  # why `energy` is None: missing, not JSON, not an energy record

    @property
    def status(self) -> str:
        return observed_status(self.folder, self.results)

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config") or {}

    @property
    def overrides(self) -> list[str]:
        return list(self.results.get("overrides") or [])

    @property
    def error(self) -> str:
        """'<kind>: <message>' for a failed job; a note for other unfinished jobs."""
        if self.status == "running":
            return "no result yet: still training"
        if self.status == "killed":
            return KILLED_NOTE
        kind, message = self.results.get("error_kind"), self.results.get("error")
        if not message:
            return kind or "no reason recorded"
        return f"{kind}: {message}" if kind else str(message)

    @property
    def reused_from(self) -> str | None:
        return self.results.get("reused_from")


@dataclass
class Network:
    """Jobs that share one training: they differ only in pattern selection (or nothing)."""

    id: str
    label: str
    jobs: list[Job] = field(default_factory=list)

    @property
    def trained(self) -> Job | None:
        """The completed job whose numbers stand for the network (one that trained, if any)."""
        done = [j for j in self.jobs if j.status == "completed"]
        own = [j for j in done if not j.reused_from]
        return (own or done or [None])[0]

    @property
    def status(self) -> str:
        if self.trained is not None:
            return "completed"
        statuses = {j.status for j in self.jobs}
        return "running" if "running" in statuses else sorted(statuses)[0]

    @property
    def slug(self) -> str:
        """A folder name for the network's figures."""
        safe = "".join(c if c.isalnum() or c in "._=,+-" else "_" for c in self.label)
        return f"{self.id}_{safe}"[:150]


# -- reading ---------------------------------------------------------------------------------------
def load_job(folder: Path, root: Path) -> Job:
    """The job in `folder`; an unreadable results.json becomes status 'unreadable'."""
    results = read_json(folder / RESULTS_FILE)
    if not isinstance(results, dict):
        results = {"status": "unreadable", "error": f"{RESULTS_FILE} could not be read"}
    energy, problem = read_record(folder / ENERGY_FILE)
    rel = folder.relative_to(root)
    name = folder.name if rel == Path(".") else rel.as_posix()
    return Job(folder, name, results, energy, problem)


def find_jobs(root: Path) -> list[Job]:
    """Every folder below `root` (or `root` itself) holding a results.json, sorted by path."""
    paths = sorted(root.rglob(RESULTS_FILE))
    return [load_job(p.parent, root) for p in paths if REPORT_FIGS not in p.relative_to(root).parts]


# -- overrides -------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, str]:
    """'precision='3'' -> ('precision', '3'); '~key' -> ('~key', 'deleted')."""
    key, sep, value = text.partition("=")
    if not sep:
        return key, "deleted"
    return key.lstrip("+"), value.strip().strip("'\"")


def training_overrides(job: Job) -> dict[str, str]:
    """The job's command-line settings that can change training."""
    pairs = (parse_override(o) for o in job.overrides)
    return {k: v for k, v in pairs if changes_training(k)}


# -- training identity -----------------------------------------------------------------------------
def _strip(node: Any, ignored: list[list[str]], own_dir: str | None) -> Any:
    """A copy of `node` without the ignored paths; the job's own folder name is neutralised."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            here = [p for p in ignored if p and (p[0] == key or p[0] == "*")]
            if any(len(p) == 1 for p in here):
                continue
            out[key] = _strip(value, [p[1:] for p in here], own_dir)
        return out
    if isinstance(node, list):
        return [_strip(v, [], own_dir) for v in node]
    if isinstance(node, str) and own_dir and own_dir in node:
        return node.replace(own_dir, "<run folder>")
    return node


def training_config(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config without the entries that change no training."""
    own_dir = (config.get("paths") or {}).get("output_dir")
    return _strip(config, [p.split(".") for p in NOT_TRAINING + ECHOES], own_dir)


def training_key(job: Job) -> str:
    """Equal for jobs that trained (or would train) the same network; ignores pattern selection."""
    if job.config:
        return "config:" + json.dumps(training_config(job.config), sort_keys=True, default=str)
    return "overrides:" + json.dumps(sorted(training_overrides(job).items()))


# -- grouping --------------------------------------------------------------------------------------
def reuse_source(jobs: list[Job], job: Job) -> Job | None:
    """The job whose training `job` reused: same folder, else a sibling folder of the same name
    (the sweep was moved or copied)."""
    if not job.reused_from:
        return None
    source = Path(job.reused_from)
    same = [j for j in jobs if j.folder.resolve() == source.resolve()]
    moved = [j for j in jobs if j.folder.name == source.name and j.folder.parent == job.folder.parent]
    return (same or moved or [None])[0]


def _keys_by_job(jobs: list[Job]) -> list[str]:
    """Each job's training key; a job that reused a sibling's training takes the sibling's key."""
    keys = {id(j): training_key(j) for j in jobs}
    for job in jobs:
        source = reuse_source(jobs, job)
        if source is not None:
            keys[id(job)] = keys[id(source)]
    return [keys[id(j)] for j in jobs]


def settings(job: Job) -> dict[str, str]:
    """The job's training settings: precision and neuron by name, then its other training overrides."""
    out = {k: v for k, v in training_overrides(job).items() if k not in ALIASES}
    for key, value in (("precision", precision_label(job)), ("neuron", neuron_label(job))):
        if value != "?":
            out[key] = value
    return out


def _group_settings(jobs: list[Job]) -> dict[str, str]:
    out: dict[str, str] = {}
    for job in jobs:
        for k, v in settings(job).items():
            out.setdefault(k, v)
    return out


def config_value(config: dict[str, Any], key: str) -> str | None:
    """The value at dotted `key` of a resolved config (a group's `name` for a group), or None."""
    node: Any = config
    for part in key.lstrip("+~").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return str(node["name"]) if "name" in node else None
    return "null" if node is None else str(node)


def setting_value(jobs: list[Job], key: str) -> str | None:
    """A group's value for `key`: from its overrides, else from its config ('(default)' when the
    config does not name it), else None (unknown: the jobs recorded no config)."""
    values = _group_settings(jobs)
    if key in values:
        return values[key]
    config = next((j.config for j in jobs if j.config), None)
    if config is None:
        return None
    return config_value(config, key) or "(default)"


def varying_settings(groups: list[list[Job]]) -> list[str]:
    """Setting keys with at least two different known values among the groups."""
    keys = sorted({k for g in groups for k in _group_settings(g)})
    return [k for k in keys if len({setting_value(g, k) for g in groups} - {None}) > 1]


def group_networks(jobs: list[Job], fallback_label: str = "run") -> list[Network]:
    """Jobs grouped by training key, in order of first appearance, with short labels."""
    groups: dict[str, list[Job]] = {}
    for job, key in zip(jobs, _keys_by_job(jobs)):
        groups.setdefault(key, []).append(job)
    members = list(groups.values())
    varying = varying_settings(members)
    networks = []
    for i, group in enumerate(members, start=1):
        known = [(k, setting_value(group, k)) for k in varying]
        label = ",".join(f"{k}={v}" for k, v in known if v is not None)
        networks.append(Network(f"N{i}", label or (fallback_label if len(members) == 1 else f"N{i}"), group))
    return networks


# -- what a network is ----------------------------------------------------------------------------
def precision_label(job: Job) -> str:
    """'2', '3', '4' or 'fp32' (from the config, else from the overrides; '?' if unknown)."""
    prec = job.config.get("precision")
    if isinstance(prec, dict) and "bits" in prec:
        return "fp32" if prec["bits"] is None else str(prec["bits"])
    given = dict(parse_override(o) for o in job.overrides)
    if "precision.bits" in given:
        return "fp32" if given["precision.bits"] in ("null", "None") else given["precision.bits"]
    return given.get("precision", "?")


def neuron_label(job: Job) -> str:
    """The neuron model's name (config, else overrides; '?' if unknown)."""
    neuron = job.config.get("neuron")
    if isinstance(neuron, dict) and neuron.get("name"):
        return str(neuron["name"])
    given = dict(parse_override(o) for o in job.overrides)
    return given.get("neuron.name", given.get("neuron", "?"))


# Settings whose values are replicates of one experiment: the report gives mean ± std over them.
REPLICATE_KEYS = ("seed",)


def other_settings(network: Network, varying: list[str]) -> str:
    """The network's varying settings other than precision, neuron and seed (a panel title)."""
    rest = [(k, setting_value(network.jobs, k)) for k in varying if k not in ("precision", "neuron", *REPLICATE_KEYS)]
    return ",".join(f"{k}={v}" for k, v in rest if v is not None)


def replicate_groups(networks: list[Network]) -> dict[str, list[Network]]:
    """Networks that differ only in their seed, keyed by their settings without it (in order)."""
    varying = [k for k in varying_settings([n.jobs for n in networks]) if k not in REPLICATE_KEYS]
    groups: dict[str, list[Network]] = {}
    for net in networks:
        known = [(k, setting_value(net.jobs, k)) for k in varying]
        groups.setdefault(",".join(f"{k}={v}" for k, v in known if v is not None) or "all", []).append(net)
    return groups
