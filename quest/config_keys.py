"""Which keys a command line may set, and of what type: typos are refused before Hydra runs.

The schema is the config tree itself: the union of every YAML file under conf/ (and the sweep
group) gives each key and the types of its defaults; a node with a `_target_` also accepts its
constructor's parameters (`+trainer.profiler=simple`); `callbacks` and `logger` accept new entries.
An override whose key is in none of these is refused with the nearest valid name, `+` or not:

    config error: +precison=3: unknown key 'precison' (did you mean precision?)

and a value of the wrong type names its key: `neuron.theta=abc: must be a number (default 0.5)`.
"""
from __future__ import annotations

import difflib
import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from omegaconf import OmegaConf

from quest.config_checks import ConfigError

# Nodes whose children are free-form entries (a new callback or logger brings its own _target_).
OPEN_NODES = ("callbacks", "logger")
GLOBAL_PACKAGE = "@package _global_"


class _Leaf:
    """A key's default values across all config files (their types are its schema)."""

    def __init__(self) -> None:
        self.examples: list[Any] = []

    def add(self, value: Any) -> None:
        if value is not None:
            self.examples.append(value)


def _merge(tree: dict[str, Any], data: dict[str, Any]) -> None:
    """Union `data` into `tree`: dicts recurse, anything else becomes a _Leaf with its value."""
    for key, value in data.items():
        if key == "defaults":
            continue
        if isinstance(value, dict):
            node = tree.get(key)
            if not isinstance(node, dict):
                tree[key] = node = {}
            _merge(node, value)
        else:
            node = tree.get(key)
            if isinstance(node, dict):
                continue
            if node is None:
                tree[key] = node = _Leaf()
            node.add(value)


def _load(path: Path) -> tuple[dict[str, Any], bool]:
    """A YAML file's content (interpolations unresolved) and whether it is a global package."""
    text = path.read_text()
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    return (data if isinstance(data, dict) else {}), GLOBAL_PACKAGE in text[:400]


def group_dirs(conf_dir: Path, extra_dirs: Iterable[Path] = ()) -> dict[str, Path]:
    """Config group name -> its folder (conf/<group>/ and e.g. sweeps/sweep/)."""
    dirs = {d.name: d for d in sorted(conf_dir.iterdir()) if d.is_dir() and d.name != "hydra"}
    for extra in extra_dirs:
        dirs.update({d.name: d for d in sorted(Path(extra).iterdir()) if d.is_dir()})
    return dirs


@lru_cache(maxsize=4)
def default_options(conf_dir: Path) -> dict[str, Any]:
    """Group -> the option conf/train.yaml's defaults list selects (None: no option)."""
    root = OmegaConf.to_container(OmegaConf.load(Path(conf_dir) / "train.yaml"), resolve=False) or {}
    chosen: dict[str, Any] = {}
    for entry in root.get("defaults", []) if isinstance(root, dict) else []:
        if isinstance(entry, dict):
            chosen.update(entry)
    return chosen


@lru_cache(maxsize=4)
def known_tree(conf_dir: Path, extra_dirs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Every key any config file can set, with the values it takes (the default run's first)."""
    root, _ = _load(conf_dir / "train.yaml")
    tree: dict[str, Any] = {}
    _merge(tree, {k: v for k, v in root.items() if k != "hydra"})
    chosen = default_options(conf_dir)
    global_files = []
    for group, folder in group_dirs(conf_dir, extra_dirs).items():
        for path in sorted(folder.glob("*.yaml"), key=lambda p: (p.stem != str(chosen.get(group)), p.stem)):
            data, is_global = _load(path)
            if is_global:  # experiment, debug, sweep: they set keys of other groups, after those
                global_files.append(data)
                continue
            node = tree.get(group)
            if not isinstance(node, dict):
                tree[group] = node = {}
            _merge(node, data)
    for data in global_files:
        _merge(tree, {k: v for k, v in data.items() if k != "hydra"})
    return tree


def _target_parameters(node: dict[str, Any]) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """The constructor parameters of a node's `_target_` and whether it takes **kwargs."""
    target = node.get("_target_")
    if not isinstance(target, _Leaf) or not target.examples:
        return None
    from hydra.utils import get_object

    params: dict[str, inspect.Parameter] = {}
    open_kwargs = False
    for name in target.examples:
        try:
            signature = inspect.signature(get_object(str(name)))
        except Exception:  # noqa: BLE001 - an unimportable target is reported when it is instantiated
            return {}, True
        for p in signature.parameters.values():
            if p.kind == p.VAR_KEYWORD:
                open_kwargs = True
            elif p.kind != p.VAR_POSITIONAL:
                params[p.name] = p
    return params, open_kwargs


def _suggest(prefix: str, word: str, candidates: Iterable[str]) -> str:
    """' (did you mean <prefix><nearest>?)', or '' when no candidate is close."""
    match = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{match[0]}?)" if match else ""


def _type_error(value: Any, leaf: _Leaf, param: inspect.Parameter | None) -> str | None:
    """Why `value` does not fit the key's default type, or None when it fits."""
    if value is None or (isinstance(value, str) and "${" in value) or not leaf.examples:
        return None
    kinds = {type(v) for v in leaf.examples}
    annotation = str(param.annotation) if param is not None and param.annotation is not param.empty else ""
    if kinds & {str, list, dict} or type(value).__name__ in annotation:
        return None  # e.g. trainer.devices=auto: the constructor takes a str there too
    default = leaf.examples[0]
    if bool in kinds:
        fits = isinstance(value, bool) or ("int" in annotation and isinstance(value, int))
        return None if fits else f"must be true or false (default {str(default).lower()})"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if float in kinds or "float" in annotation:
        return None if is_number else f"must be a number (default {default})"
    if int in kinds:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"must be an integer (default {default})"
    return None


def _values(override: Any) -> list[Any]:
    """The value(s) an override sets; [] when they cannot be listed (intervals, functions)."""
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return list(override.sweep_iterator())
    except Exception:  # noqa: BLE001 - interval() and friends have no finite list of values
        return []


def check_key(
    key: str, tree: dict[str, Any], groups: Iterable[str], delete: bool = False
) -> tuple[str | None, _Leaf | None, inspect.Parameter | None]:
    """(error or None, the key's leaf if it has one, the constructor parameter if it is one).

    A deletion (`~key`) must name a key that a config file sets."""
    parts = key.split(".")
    node: Any = tree
    parent: dict[str, Any] = tree
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        if depth == 1 and parts[0] in OPEN_NODES and isinstance(node, dict) and part not in node and not delete:
            return None, None, None  # a new callback or logger entry
        if isinstance(node, dict) and part in node:
            parent, node = node, node[part]
            continue
        if isinstance(node, dict):
            found = _target_parameters(node) if not delete else None
            if found is not None:
                params, open_kwargs = found
                if part in params and depth == len(parts) - 1:
                    return None, None, params[part]
                if open_kwargs or part in params:
                    return None, None, None
                candidates = list(node) + list(params)
            else:
                candidates = list(node) + (list(groups) if depth == 0 else [])
            prefix = ".".join(parts[:depth]) + "." if depth else ""
            return f"unknown key '{path}'{_suggest(prefix, part, candidates)}", None, None
        return f"unknown key '{path}': '{'.'.join(parts[:depth])}' holds a value, not keys", None, None
    if isinstance(node, _Leaf):
        found = _target_parameters(parent) if parent is not node else None
        return None, node, (found[0].get(parts[-1]) if found else None)
    return None, None, None


def check_override_keys(argv: Sequence[str], conf_dir: Path, extra_dirs: Sequence[Path] = ()) -> None:
    """Refuse command-line overrides whose key no config knows, or whose value has the wrong type."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if a.startswith("~") or ("=" in a and not a.startswith("-"))]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception:  # noqa: BLE001 - Hydra reports its own syntax errors
        return
    tree = known_tree(Path(conf_dir), tuple(Path(d) for d in extra_dirs))
    groups = group_dirs(Path(conf_dir), extra_dirs)
    for arg, override in zip(args, overrides):
        key = override.key_or_group
        if key.startswith("hydra") or override.package is not None:
            continue
        if key in groups and "." not in key:
            continue  # a group option: checked by config_checks.check_cli_overrides
        error, leaf, param = check_key(key, tree, groups, delete=override.is_delete())
        if error:
            raise ConfigError(f"{arg}: {error}")
        if override.is_delete():
            continue
        for value in _values(override):
            problem = _type_error(value, leaf, param) if leaf is not None else None
            if problem:
                raise ConfigError(f"{key}={value}: {problem}")


def group_listing(conf_dir: Path, extra_dirs: Sequence[Path] = ()) -> str:
    """`group: option, ... (default: x)` per config group, for `python train.py --help`."""
    defaults = default_options(Path(conf_dir))
    lines = []
    for group, folder in group_dirs(Path(conf_dir), [Path(d) for d in extra_dirs]).items():
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if group not in defaults:
            chosen = f"none; +{group}=<option>"  # a group outside train.yaml's defaults list
        else:
            chosen = defaults[group] if defaults[group] is not None else "none"
        lines.append(f"  {group:<11} {', '.join(options)}  (default: {chosen})")
    return "\n".join(lines)
