"""quest-eval: a trained run on imperfect devices: program N chips, test each, report mean +- std.

    quest-eval <run>/checkpoints/last.ckpt [--chips 5] [--seed 0] [--set programming_noise.sigma=0.02 ...]
               [--sweep programming_noise.sigma=0,0.02,0.05] [--pattern N] [--out DIR]

Keys are those of the card's `nonideal` block (quest/device/nonideal.py), with or without the
`device.nonideal.` prefix; values are YAML (0.02, true, [{from: a, to: b, p_fail: 0.1}]). Each
setting is validated as a card is, before any chip is programmed. Chip c is seeded with seed + c,
the same chips at every sweep point. Writes <run>/nonideal_eval.json (and, with --sweep,
nonideal_sweep.png and nonideal_sweep.md). A failure is one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from quest.export.run import ExportError, TrainedRun, load_run

SCHEMA = "quest.nonideal_eval/1"
EVAL_FILE = "nonideal_eval.json"
PREFIX = "device.nonideal."


class EvalError(ValueError):
    """A request quest-eval cannot serve; one line."""


def read_eval(path: Path) -> dict[str, Any] | None:
    """A nonideal_eval.json record (schema SCHEMA with its points), or None when the file is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("schema") == SCHEMA and isinstance(data.get("points"), list)
    return data if ok and all(isinstance(p, dict) and "test_acc_mean" in p for p in data["points"]) else None


# -- the non-ideality settings ----------------------------------------------------------------------
def parse_setting(text: str, allow_list: bool = False) -> tuple[list[str], Any]:
    """'programming_noise.sigma=0.02' -> (['programming_noise', 'sigma'], 0.02); with `allow_list`,
    'k=0,0.02' -> (k, [0, 0.02])."""
    key, sep, value = text.partition("=")
    key = key.strip().removeprefix(PREFIX)
    if not sep or not key or not value.strip():
        raise EvalError(f"{text!r}: expected KEY=VALUE, e.g. programming_noise.sigma=0.02")
    parts = key.split(".")
    if len(parts) != 2:
        raise EvalError(f"{text!r}: KEY is <model>.<field>, e.g. write_failure.p_fail")
    if allow_list:
        return parts, [yaml.safe_load(v) for v in value.split(",")]
    return parts, yaml.safe_load(value)


def device_with(device: dict[str, Any], settings: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """A copy of the run's device card with `settings` applied to its nonideal block."""
    out = copy.deepcopy(device)
    block = out.setdefault("nonideal", {}) or {}
    out["nonideal"] = block
    for (model, key), value in settings:
        node = block.setdefault(model, {})
        if not isinstance(node, dict):
            raise EvalError(f"{PREFIX}{model}: is not a block of settings")
        node[key] = value
    return out


# -- evaluation -------------------------------------------------------------------------------------
def test_accuracy(run: TrainedRun, device: str, datamodule: Any) -> float:
    """Test accuracy of the run's model as it computes now: QuestModule.test_step's prediction
    (logits summed over T, argmax) on the run's test split."""
    import torch

    model = run.model.to(device).eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in datamodule.test_dataloader():
            x, y = datamodule.on_after_batch_transfer((x.to(device), y.to(device)), 0)
            correct += int((model(x).sum(0).argmax(-1) == y).sum())
            total += int(y.numel())
    return correct / total


def evaluate_point(run: TrainedRun, device_cfg: dict[str, Any], pattern: int, chips: int, seed: int,
                   device: str, datamodule: Any) -> dict[str, Any]:
    """Program `chips` chips of the run's net on `device_cfg` and test each."""
    from quest.device.card import DeviceCard, DeviceCardError
    from quest.device.chip import ChipSpec
    from quest.evaluate.chips import on_chip, program_model
    from quest.export.device import cell_mapping

    try:
        card = DeviceCard.from_config(device_cfg)
        spec = ChipSpec.build(card, cell_mapping(device_cfg, run.model.bits, pattern))
    except (DeviceCardError, ValueError) as e:
        raise EvalError(str(e).splitlines()[0]) from None
    rows = []
    for c in range(chips):
        if c and card.nonideal.ideal:  # an ideal device: every chip is the first
            rows.append(dict(rows[0], seed=seed + c))
            continue
        chip = program_model(run.model, spec, seed + c)
        with on_chip(run.model, chip, seed + c):
            acc = test_accuracy(run, device, datamodule)
        rows.append({
            "seed": seed + c,
            "test_acc": acc,
            "programming_energy_fJ": sum(l.energy_fJ for l in chip.values()),
            "ideal_programming_energy_fJ": sum(l.ideal_energy_fJ for l in chip.values()),
            "write_attempts": sum(l.attempts for l in chip.values()),
            "transitions": sum(l.transitions for l in chip.values()),
            "failed_transitions": sum(l.failed_transitions for l in chip.values()),
            "stuck_cells": sum(l.stuck_cells for l in chip.values()),
            "wrong_cells": sum(l.wrong_cells for l in chip.values()),
            "cells": sum(l.states.size for l in chip.values()),
        })
    acc = np.array([r["test_acc"] for r in rows])
    energy = np.array([r["programming_energy_fJ"] for r in rows])
    ddof = 1 if len(rows) > 1 else 0
    return {
        "nonideal": card.nonideal.summary(),
        "ideal": card.nonideal.ideal,
        "chips": rows,
        "test_acc_mean": float(acc.mean()),
        "test_acc_std": float(acc.std(ddof=ddof)),
        "programming_energy_fJ_mean": float(energy.mean()),
        "programming_energy_fJ_std": float(energy.std(ddof=ddof)),
        # failed attempts (write failure, stuck cells); 0 up to float rounding when nothing fails
        "extra_write_energy_fJ_mean": round(float(energy.mean() - rows[0]["ideal_programming_energy_fJ"]), 6),
    }


def sweep_table(key: str, points: list[dict[str, Any]]) -> str:
    """Markdown: accuracy and programming energy at each value of the swept setting."""
    lines = [f"| {key} | test acc (mean ± std over chips) | chips | programming energy pJ (mean) | extra write pJ |",
             "|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['value']} | {p['test_acc_mean']:.4f} ± {p['test_acc_std']:.4f} | {len(p['chips'])} | "
                     f"{p['programming_energy_fJ_mean'] / 1e3:.3f} | {p['extra_write_energy_fJ_mean'] / 1e3:.3f} |")
    return "\n".join(lines) + "\n"


def sweep_figure(key: str, points: list[dict[str, Any]], reference: float | None, path: Path) -> Path:
    """Accuracy vs the swept setting: mean over chips, a band of +- one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = all(isinstance(p["value"], (int, float)) and not isinstance(p["value"], bool) for p in points)
    x = np.array([float(p["value"]) if numeric else i for i, p in enumerate(points)])
    mean = np.array([p["test_acc_mean"] for p in points])
    std = np.array([p["test_acc_std"] for p in points])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, mean, "o-", color="C0", label=f"mean over {len(points[0]['chips'])} chips")
    ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.25, label="± 1 std")
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1, label="checkpoint test acc")
    ax.set_xlabel(key)
    if not numeric:  # e.g. stuck_at.state=a,b,c: one tick per value
        ax.set_xticks(x, [str(p["value"]) for p in points])
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- the command ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quest-eval", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a run's checkpoint (or run folder: its checkpoints/last.ckpt)")
    p.add_argument("--chips", type=int, default=5, help="chips programmed per setting (default 5)")
    p.add_argument("--seed", type=int, default=0, help="chip c is seeded with seed + c (default 0)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a non-ideality setting, e.g. write_failure.p_fail=0.1 (repeatable)")
    p.add_argument("--sweep", default=None, metavar="KEY=V1,V2,...",
                   help="one setting at several values: an accuracy-vs-non-ideality table and figure")
    p.add_argument("--pattern", type=int, default=None, help="R-S pattern number (default: the run's selected one)")
    p.add_argument("--device", default="auto", help="torch device (default: cuda when available)")
    p.add_argument("--out", default=None, help="output folder (default: the run folder)")
    return p


def run_eval(args: argparse.Namespace) -> tuple[dict[str, Any], list[Path]]:
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from quest.export.programming_map import selected_pattern

    if args.chips < 1:
        raise EvalError(f"--chips={args.chips}: must be >= 1")
    settings = [parse_setting(s) for s in args.settings]
    sweep = parse_setting(args.sweep, allow_list=True) if args.sweep else None
    run = load_run(args.checkpoint)
    if run.model.bits is None:
        raise EvalError("precision=fp32: the net has no weight levels to program into device cells")
    pattern = selected_pattern(run) if args.pattern is None else args.pattern
    base = OmegaConf.to_container(run.config.device, resolve=True)
    values = sweep[1] if sweep else [None]
    configs = [device_with(base, settings + ([(sweep[0], v)] if sweep else [])) for v in values]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    datamodule = instantiate(run.config.data)
    datamodule.setup("test")
    points = []
    for value, cfg in zip(values, configs):
        point = evaluate_point(run, cfg, pattern, args.chips, args.seed, device, datamodule)
        points.append({"value": value, **point})
        print(f"{'.'.join(sweep[0]) + '=' + str(value) if sweep else 'settings'}: test acc "
              f"{point['test_acc_mean']:.4f} ± {point['test_acc_std']:.4f} over {args.chips} chips, programming "
              f"{point['programming_energy_fJ_mean'] / 1e3:.3f} pJ (+{point['extra_write_energy_fJ_mean'] / 1e3:.3f} pJ "
              "of failed attempts)")
    out = Path(args.out) if args.out else run.run_dir
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "schema": SCHEMA,
        "checkpoint": str(run.checkpoint),
        "checkpoint_test_acc": run.results.get("test_acc"),
        "card": base.get("name"),
        "pattern": pattern,
        "precision_bits": run.model.bits,
        "chips": args.chips,
        "seed": args.seed,
        "settings": {f"{PREFIX}{m}.{k}": v for (m, k), v in settings},
        "sweep": {"key": f"{PREFIX}{'.'.join(sweep[0])}", "values": values} if sweep else None,
        "torch_device": device,
        "points": points,
    }
    written = [out / EVAL_FILE]
    written[0].write_text(json.dumps(record, indent=2, default=str) + "\n")
    if sweep:
        key = ".".join(sweep[0])
        table = sweep_table(key, points)
        (out / "nonideal_sweep.md").write_text(table)
        print(table, end="")
        written += [out / "nonideal_sweep.md",
                    sweep_figure(key, points, run.results.get("test_acc"), out / "nonideal_sweep.png")]
    return record, written


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _, written = run_eval(args)
    except (EvalError, ExportError) as e:
        print(f"quest-eval: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
