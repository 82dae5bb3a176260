"""The report's non-ideality section: accuracy of trained runs programmed into imperfect chips.

Reads every quest-eval record (nonideal_eval.json, quest.evaluate.cli) in a job's folder or below it
(`--out <run>/<dir>`). Swept records give one figure per swept key (a curve per record: mean ± std
band over chips); every point of every record is a row of the table. A job trained with
hardware-aware training (energy.json's write.nonideal) says which non-idealities it trained with.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from quest.energy.record import nonideal_training
from quest.evaluate.cli import EVAL_FILE, PREFIX, read_eval
from quest.report import figures as fg
from quest.report import markdown as md

if TYPE_CHECKING:
    from quest.report.build import Context
    from quest.report.jobs import Job


def training_label(job: "Job") -> str:
    """'plain' or 'noise-aware (<the non-zero settings it trained with>)'."""
    block = nonideal_training(job.energy)
    if not block.get("hardware_aware_training"):
        return "plain"
    on = [f"{model}.{k}={v}" for model, node in (block.get("nonideal") or {}).items()
          for k, v in node.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
          and k in ("sigma", "p_fail", "fraction")]
    if block.get("redraw") == "step":
        on.append("a new chip every step")
    return f"noise-aware ({', '.join(on) or 'ideal card'})"


def eval_records(job: "Job") -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of each quest-eval record in the job's folder or below it."""
    found = []
    for path in sorted(job.folder.rglob(EVAL_FILE)):
        record = read_eval(path)
        if record is not None:
            found.append((path, record))
    return found


def settings_text(record: dict[str, Any]) -> str:
    fixed = [f"{k.removeprefix(PREFIX)}={v}" for k, v in (record.get("settings") or {}).items()]
    return ", ".join(fixed) or "-"


def nonideal_section(ctx: "Context") -> str:
    """Figure(s) and table of test accuracy on imperfect chips (empty when no job has a record)."""
    rows, curves = [], {}
    for job in ctx.jobs:
        jid = ctx.job_ids[job.name]
        label = training_label(job)
        for path, record in eval_records(job):
            sweep = record.get("sweep") or {}
            key = str(sweep.get("key", "")).removeprefix(PREFIX)
            where = path.parent.relative_to(ctx.root).as_posix()
            for point in record["points"]:
                rows.append([jid, label, where, settings_text(record), f"{key}={point['value']}" if key else "-",
                             f"{point['test_acc_mean']:.4f} ± {point['test_acc_std']:.4f}", len(point.get("chips") or []),
                             md.num(point.get("programming_energy_fJ_mean", 0) / 1e3),
                             md.num(point.get("extra_write_energy_fJ_mean", 0) / 1e3)])
            values = [p["value"] for p in record["points"]]
            if key and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                name = f"{jid} {label}" + (f", {settings_text(record)}" if record.get("settings") else "")
                curves.setdefault(key, {})[name] = (
                    [float(v) for v in values], [p["test_acc_mean"] for p in record["points"]],
                    [p["test_acc_std"] for p in record["points"]])
    if not rows:
        return ""
    lines = ["## Accuracy on imperfect devices", "",
             "Each trained run programmed into chips by `quest-eval` (README \"Device non-idealities\"): test "
             "accuracy mean ± std over the chips, and the programming energy (pJ; extra: failed write attempts). "
             "Training: plain, or noise-aware (hardware-aware training, our addition) with the non-idealities listed.", ""]
    for i, (key, by_run) in enumerate(sorted(curves.items())):
        path = fg.accuracy_vs_nonideality(key, by_run, ctx.figs / f"nonideal_{i}.png")
        lines += [md.image(path, ctx.root, f"test accuracy vs {key}"), ""]
    lines.append(md.table(["job", "training", "record", "fixed settings", "point", "test acc", "chips",
                           "programming pJ", "extra pJ"], rows))
    return "\n".join(lines)
