"""Checks that answer bad input before any work starts, each with one line naming the key.

Most values are checked where they are used (neurons, quantizer, encoders, data sources, device
cards raise `ValueError`s that name their key); this module adds the command-line group check
and the cross-cutting checks no single constructor owns.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig


class ConfigError(ValueError):
    """A configuration value that QUEST cannot run with."""


def group_options(conf_dir: Path, extra_dirs: Sequence[Path] = ()) -> dict[str, list[str]]:
    """Config group name -> available options (YAML file stems) under conf/ and the user's own
    config folders (`extra_dirs`, e.g. one holding device/my_pcm.yaml)."""
    groups: dict[str, set[str]] = {}
    for root in (conf_dir, *extra_dirs):
        for d in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
            if d.is_dir() and d.name != "hydra":
                groups.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {name: sorted(options) for name, options in groups.items()}


def user_config_dirs(argv: Sequence[str]) -> list[Path]:
    """Config folders the command line adds: Hydra's --config-dir/-cd, and file:// entries of
    hydra.searchpath=[...]."""
    dirs: list[str] = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            entries = arg.split("=", 1)[1].strip("[]").split(",")
            dirs += [e.strip().strip("'\"")[len("file://"):] for e in entries if e.strip().strip("'\"").startswith("file://")]
    return [Path(d) for d in dirs]


def quote_numeric_group_options(argv: Sequence[str], conf_dir: Path) -> list[str]:
    """`precision=2,3` -> `precision='2','3'`: Hydra reads a bare 2 as an int, which it cannot
    use as a config group option (precision and pattern have numeric option names)."""
    groups = group_options(conf_dir, user_config_dirs(argv))
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in groups and "(" not in value and "[" not in value:
            value = ",".join(f"'{v}'" if v.isdigit() else v for v in value.split(","))
            arg = f"{key}={value}"
        out.append(arg)
    return out


# Lightning precisions QUEST trains with. "*-true" 16-bit modes would cast the parameters, the
# membrane and the MINT quantizer to 16 bits; the mixed modes run only convs and linears in 16 bits.
# Lightning's older aliases: 32 = 32-true, 64 = 64-true, 16 = 16-mixed, bf16 = bf16-mixed.
TRAINER_PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed", "32", "64", "16", "bf16")


def check_cli_overrides(argv: Sequence[str], conf_dir: Path) -> None:
    """Reject `group=option` overrides whose option does not exist (also in comma sweeps), in conf/
    or in a config folder the command line adds (--config-dir, hydra.searchpath)."""
    dirs = [conf_dir, *user_config_dirs(argv)]
    groups = group_options(conf_dir, dirs[1:])
    for arg in argv:
        if arg.startswith("-") or "=" not in arg or arg.lstrip("+").startswith("hydra."):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key not in groups or "(" in value or value in ("null", ""):
            continue
        for option in value.split(","):
            option = option.strip("'\"")
            if option not in groups[key]:
                raise ConfigError(f"{key}={option}: allowed {', '.join(groups[key])}")
            check_yaml_syntax(key, option, dirs)


def check_yaml_syntax(group: str, option: str, dirs: Sequence[Path]) -> None:
    """The chosen option's file (a user's device card, say) parses as YAML, else one line with where."""
    import yaml

    for root in dirs:
        path = Path(root) / group / f"{option}.yaml"
        if not path.is_file():
            continue
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ConfigError(f"{group}={option}: {path} is not valid YAML: {getattr(e, 'problem', None) or e}{where}") from None
        return


def validate_config(cfg: DictConfig) -> None:
    """Cross-cutting checks on the composed config (before data, model or trainer are built)."""
    epochs = cfg.trainer.get("max_epochs")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ConfigError(f"trainer.max_epochs={epochs!r}: must be an integer >= 1")
    if cfg.get("test_ckpt") not in ("best", "last"):
        raise ConfigError(f"test_ckpt={cfg.get('test_ckpt')!r}: allowed best, last")
    for key in ("ckpt_path", "init_from"):
        ckpt = cfg.get(key)
        if ckpt is not None and not Path(ckpt).is_file():
            raise ConfigError(f"{key}={ckpt}: no such checkpoint file")
    if cfg.get("init_from") is not None:
        if cfg.get("ckpt_path") is not None:
            raise ConfigError(f"init_from={cfg.init_from}: not with ckpt_path (resume a run, or start a new one from weights)")
        if cfg.module.get("start_spike_rate") is not None:
            raise ConfigError(f"init_from={cfg.init_from}: not with module.start_spike_rate (it calibrates an untrained start)")
    bits = cfg.precision.get("bits")
    if bits not in (2, 3, 4, None):
        raise ConfigError(f"precision.bits={bits!r}: allowed 2, 3, 4 or null (fp32)")
    steps = cfg.encoding.get("time_steps")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ConfigError(f"encoding.time_steps={steps!r}: must be an integer >= 1")
    selection = cfg.pattern.get("selection")
    if not (selection == "best" or (isinstance(selection, int) and selection >= 1)):
        raise ConfigError(f"pattern.selection={selection!r}: allowed best or a pattern number >= 1")
    batch = cfg.data.get("batch_size")
    if not (isinstance(batch, int) and batch >= 1):
        raise ConfigError(f"data.batch_size={batch!r}: must be an integer >= 1")
    arithmetic = str(cfg.trainer.get("precision", "32-true"))
    if arithmetic not in TRAINER_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={arithmetic}: allowed {', '.join(TRAINER_PRECISIONS)} "
            "(the membrane and its quantizer stay fp32; mixed precision runs only the convs and linears in 16 bits)"
        )


def check_run_inputs(cfg: DictConfig) -> None:
    """Values that would train silently to a wrong result: the model's width, the device card's name."""
    width = cfg.model.get("width_mult")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"model.width_mult={width!r}: must be a number > 0")
    widths = [w for w in list(cfg.model.get("layers") or []) + list(cfg.model.get("head_hidden") or [])
              if isinstance(w, int) and not isinstance(w, bool)]
    if widths and round(min(widths) * width) < 1:
        raise ConfigError(f"model.width_mult={width}: the narrowest layer ({min(widths)}) would have "
                          f"{min(widths) * width:.3g} channels; use at least {0.5 / min(widths):.3g}")
    check_device_card_name(cfg)
    check_nonideal_in_training(cfg)


def check_nonideal_in_training(cfg: DictConfig) -> None:
    """A card with a non-ideality on trains only with hardware-aware training (opt-in, our addition),
    which needs a fixed R-S pattern and quantized weights; otherwise the run is refused rather than
    trained on the ideal device without a word."""
    from quest.device.nonideal import MODELS

    block = (cfg.get("device") or {}).get("nonideal") or {}
    ha = (cfg.get("callbacks") or {}).get("hardware_aware") or {}
    enabled = bool(ha.get("enabled", False))
    for model in MODELS:
        node = block.get(model) or {}
        values = [node.get(k) for k in ("sigma", "p_fail", "fraction")]
        values += list((node.get("per_state") or {}).values()) + [e.get("p_fail") for e in node.get("per_transition") or []]
        if any(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values) and not enabled:
            raise ConfigError(f"device.nonideal.{model}: training applies device non-idealities only with "
                              "callbacks.hardware_aware.enabled=true (hardware-aware training, our addition); or train "
                              f"on the ideal card and evaluate: quest-eval <run>/checkpoints/last.ckpt --set {model}...")
    if enabled:
        selection = cfg.pattern.get("selection")
        if not (isinstance(selection, int) and not isinstance(selection, bool)):
            raise ConfigError(f"callbacks.hardware_aware.enabled=true: pattern.selection={selection!r}; the non-idealities "
                              "are indexed by device state, so the R-S pattern must be fixed: set pattern=<number>")
        if cfg.precision.get("bits") is None:
            raise ConfigError("callbacks.hardware_aware.enabled=true: precision=fp32 has no weight levels to hold in device cells")


def check_device_card_name(cfg: DictConfig) -> None:
    """A device card's `name` must be its file name: energies are reported under that name."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    chosen = HydraConfig.get().runtime.choices.get("device")
    name = cfg.get("device", {}).get("name")
    if chosen and name != chosen:
        raise ConfigError(f"device.name={name!r}: the card chosen is device={chosen} (conf/device/{chosen}.yaml); "
                          "a card's name must be its file name, or its energies are reported under another name")
