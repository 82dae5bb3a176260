"""Assembling report.md and its figures from the jobs under one folder."""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from quest.energy.record import device_block
from quest.report import claims as cl
from quest.report import energy as en
from quest.report import figures as fg
from quest.report import health as hl
from quest.report import markdown as md
from quest.report.nonideal import nonideal_section
from quest.report.jobs import (
    REPORT_FIGS,
    Job,
    Network,
    find_jobs,
    group_networks,
    neuron_label,
    other_settings,
    parse_override,
    precision_label,
    replicate_groups,
    reuse_source,
    varying_settings,
)
from quest.report.pareto import pareto_front
from quest.results import RESULTS_FILE, write_json_atomic

REPORT_FILE = "report.md"
PER_RUN_CHOICES = ("auto", "all", "none")
MAX_PATTERNS_SHOWN = 12


@dataclass
class Context:
    """Everything the sections read: jobs, networks, energy summaries, where figures go."""

    root: Path
    jobs: list[Job]
    networks: list[Network]
    energy: dict[str, en.EnergySummary]  # job name -> summary
    job_ids: dict[str, str]  # job name -> J1, J2, ...
    network_of: dict[str, Network]  # job name -> network

    @property
    def figs(self) -> Path:
        return self.root / REPORT_FIGS

    @property
    def multirun(self) -> bool:
        return len(self.networks) > 1


def build_context(root: Path) -> Context:
    """Read every job below `root` and group them into networks."""
    jobs = find_jobs(root)
    if not jobs:
        raise FileNotFoundError(f"{root}: no {RESULTS_FILE} in this folder or below it")
    networks = group_networks(jobs, fallback_label=root.name)
    return Context(
        root=root,
        jobs=jobs,
        networks=networks,
        energy={j.name: en.summarize(j) for j in jobs},
        job_ids={j.name: f"J{i}" for i, j in enumerate(jobs, start=1)},
        network_of={j.name: n for n in networks for j in n.jobs},
    )


# -- per-network numbers ---------------------------------------------------------------------------
def network_acc(network: Network) -> float | None:
    """The test accuracy of the network's trained job (None when none completed)."""
    job = network.trained
    return None if job is None else job.results.get("test_acc")


def energy_point(ctx: Context, network: Network) -> tuple[Job, en.EnergySummary] | None:
    """The network's least device energy over its completed jobs' selected patterns (None: none)."""
    options = [(j, ctx.energy[j.name]) for j in network.jobs if j.status == "completed"]
    options = [(j, e) for j, e in options if e.total_fJ is not None]
    return min(options, key=lambda je: je[1].total_fJ) if options else None


def network_reason(ctx: Context, network: Network) -> str | None:
    """Why a completed network has no device energy (None when it has)."""
    job = network.trained
    return None if job is None or energy_point(ctx, network) else ctx.energy[job.name].reason


def pareto_networks(ctx: Context) -> tuple[list[tuple[Network, Job, en.EnergySummary]], list[int]]:
    """The networks with accuracy and device energy, and the indices of their Pareto set."""
    points = []
    for net in ctx.networks:
        point, acc = energy_point(ctx, net), network_acc(net)
        if point is not None and acc is not None:
            points.append((net, *point))
    front = pareto_front([(e.total_fJ, network_acc(n)) for n, _, e in points])
    return points, front


# -- sections --------------------------------------------------------------------------------------
def header(ctx: Context) -> str:
    """Title, counts, and how to read the numbers."""
    counts: dict[str, int] = {}
    for job in ctx.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return "\n".join([
        f"# QUEST report: {ctx.root.name}",
        "",
        f"Folder {md.code(str(ctx.root))}: {len(ctx.jobs)} job(s) ({status}), {len(ctx.networks)} trained "
        f"network(s). Written {when} by {md.code('python -m quest.report')}.",
        "",
        "- Jobs that differ only in `pattern.selection` share one training (a mapping pattern changes no "
        "training): they are one **network** and count once in the accuracy figure and the Pareto set.",
        "- Device energy: **write** = per training sample (last epoch, summed over the quantized layers), "
        "**read** = per inference sample (last validation epoch measured), both for the job's selected "
        "R-S mapping pattern, in fJ.",
    ])


def common_overrides(jobs: list[Job]) -> list[str]:
    """Overrides shared by all jobs that recorded a config (with several jobs; none with one)."""
    recorded = [j for j in jobs if j.config] or jobs
    if len(jobs) < 2 or not recorded:
        return []
    sets = [{parse_override(o) for o in j.overrides} for j in recorded]
    return [o for o in recorded[0].overrides if all(parse_override(o) in s for s in sets)]


def own_overrides(job: Job, common: list[str]) -> str:
    """The job's overrides that not every job has."""
    shared = {parse_override(o) for o in common}
    return " ".join(o for o in job.overrides if parse_override(o) not in shared) or "(none)"


def status_cell(ctx: Context, job: Job) -> str:
    """'completed' (saying whose training it reuses), or the status in bold with its reason."""
    if job.status != "completed":
        return f"**{job.status}**: {job.error}"
    if job.reused_from:
        source = reuse_source(ctx.jobs, job)
        return f"completed (training reused from {ctx.job_ids[source.name] if source else job.reused_from})"
    return "completed"


def energy_cells(job: Job, e: en.EnergySummary) -> list[str | None]:
    """Pattern, write, read cells: numbers, or the reason in place of the numbers."""
    if job.status != "completed":
        return [None, None, None]
    if e.total_fJ is None:
        return [None, e.reason, "not realizable" if e.reason and e.reason.startswith("not realizable") else None]
    return [f"P{e.selected_pattern}", md.num(e.write_fJ), md.num(e.read_fJ)]


def jobs_section(ctx: Context) -> str:
    """The summary table: one row per job, then the job folders."""
    common = common_overrides(ctx.jobs)
    rows = []
    for job in ctx.jobs:
        e = ctx.energy[job.name]
        r = job.results if job.status == "completed" else {}
        rows.append([
            ctx.job_ids[job.name], ctx.network_of[job.name].id, own_overrides(job, common), status_cell(ctx, job),
            md.num(r.get("test_acc")), md.num(r.get("best_val_acc")), r.get("epochs"), md.num(r.get("wall_time_s")),
            *energy_cells(job, e), md.num(e.ann_over_snn) if job.status == "completed" else None,
        ])
    header_row = ["job", "network", "overrides", "status", "test acc", "best val acc", "epochs", "wall time (s)",
                  "pattern", "write fJ/sample", "read fJ/sample", "ANN/SNN (CMOS)"]
    parts = ["## Jobs", ""]
    if common:
        parts += [f"Overrides common to all jobs: {md.code(' '.join(common))}", ""]
    parts += [md.table(header_row, rows), ""]
    parts += ["Job folders:", ""] + [f"- {ctx.job_ids[j.name]}: {md.code(j.name)}" for j in ctx.jobs]
    return "\n".join(parts)


def unfinished_section(ctx: Context) -> str:
    """Failed, interrupted and unreadable jobs with their reasons."""
    bad = [j for j in ctx.jobs if j.status != "completed"]
    if not bad:
        return ""
    lines = ["## Jobs that did not complete", ""]
    lines += [f"- {ctx.job_ids[j.name]} ({md.code(j.name)}): **{j.status}**: {j.error}" for j in bad]
    lines += ["", "They have no accuracy or energy numbers and are left out of every figure."]
    return "\n".join(lines)


def networks_section(ctx: Context) -> str:
    """One row per trained network: what it is, its jobs, accuracy and least device energy."""
    rows = []
    for net in ctx.networks:
        job = net.trained or net.jobs[0]
        cfg = job.config
        point = energy_point(ctx, net)
        patterns = sorted({e.selected_pattern for j in net.jobs if (e := ctx.energy[j.name]).selected_pattern})
        rows.append([
            net.id, net.label, ", ".join(ctx.job_ids[j.name] for j in net.jobs), net.status,
            precision_label(job), neuron_label(job), (cfg.get("device") or {}).get("name"),
            (cfg.get("encoding") or {}).get("time_steps"), md.num(network_acc(net)),
            ", ".join(f"P{p}" for p in patterns) or None,
            md.num(point[1].total_fJ) if point else network_reason(ctx, net),
        ])
    return "\n".join(["## Networks", "", md.table(
        ["network", "settings", "jobs", "status", "precision", "neuron", "device", "T", "test acc",
         "selected patterns", "device energy fJ/sample (least over its patterns)"], rows)])


def not_realizable_section(ctx: Context) -> str:
    """Completed networks without device energy, with the reason (left out of energy figures)."""
    left_out = [(n, r) for n in ctx.networks if n.status == "completed" and (r := network_reason(ctx, n))]
    if not left_out:
        return ""
    lines = ["## No device energy", ""]
    lines += [f"- {n.id} ({n.label}): {r}" for n, r in left_out]
    lines += ["", "These networks are left out of the energy figures and the Pareto set; their accuracy, "
                  "activity and CMOS comparison are still reported."]
    return "\n".join(lines)


def neuron_hosting_section(ctx: Context) -> str:
    """Networks whose synapses fit the device (their energy is reported) but whose neuron it cannot host."""
    flagged = [(n, h) for n in ctx.networks if n.trained is not None and not network_reason(ctx, n)
               and (h := device_block(n.trained.energy).get("neuron_not_hostable"))]
    if not flagged:
        return ""
    lines = ["## Neurons the device cannot host", ""]
    lines += [f"- {n.id} ({n.label}): {h}" for n, h in flagged]
    lines += ["", "Their synapses' write and read energy are reported above: they do not depend on the neuron."]
    return "\n".join(lines)


def accuracy_section(ctx: Context) -> str:
    """Fig. 6 from the networks' test accuracy; unfinished networks are marked in their panel."""
    if not ctx.multirun:
        return ""
    varying = varying_settings([n.jobs for n in ctx.networks])
    panels: dict[str, dict[tuple[str, str], list[float] | str]] = {}
    for net in ctx.networks:
        job = net.trained or net.jobs[0]
        acc = network_acc(net)
        cells = panels.setdefault(other_settings(net, varying), {})
        key = (precision_label(job), neuron_label(job))
        if acc is not None:  # seeds of one setting share a bar
            cells[key] = (cells[key] if isinstance(cells.get(key), list) else []) + [float(acc)]
        elif key not in cells:
            cells[key] = net.status if net.trained is None else "no test acc"
    drawn = {t: cells for t, cells in sorted(panels.items()) if any(isinstance(v, list) for v in cells.values())}
    if not drawn:
        return ""
    classes = next((j.config.get("data", {}).get("num_classes") for j in ctx.jobs if j.config), None)
    chance = 1 / classes if isinstance(classes, int) and classes > 0 else None
    path = fg.accuracy_figure(drawn, ctx.figs / "accuracy.png", chance)
    note = "Bars: mean test accuracy over the seeds of each setting, error bars: sample std (n in the table "
    note += "over seeds); dotted line: chance. (x: weight precision, colour: neuron model"
    note += "; one panel per other varying setting)." if len(drawn) > 1 else ")."
    missing = [n.id for n in ctx.networks if other_settings(n, varying) not in drawn]
    if missing:
        note += f" Not drawn (no panel with a finished network): {', '.join(missing)}."
    image = md.image(path, ctx.root, "accuracy")
    return "\n".join(["## Accuracy by precision and neuron (Fig. 6)", "", image, "", note])


def pareto_section(ctx: Context) -> str:
    """The Pareto set as a table and a figure (several networks only)."""
    if not ctx.multirun:
        return ""
    points, front = pareto_networks(ctx)
    lines = ["## Accuracy / device energy: Pareto set", ""]
    if not points:
        return "\n".join(lines + ["No network has both a test accuracy and device energy numbers."])
    rows = []
    for i in front:
        net, _, e = points[i]
        rows.append([net.id, net.label, md.num(network_acc(net)), f"P{e.selected_pattern}",
                     md.num(e.write_fJ), md.num(e.read_fJ), md.num(e.total_fJ)])
    lines += [md.table(["network", "settings", "test acc", "pattern", "write fJ/sample", "read fJ/sample",
                        "total fJ/sample"], rows), ""]
    left_out = len(ctx.networks) - len(points)
    note = f"{left_out} network(s) without accuracy or device energy left out" if left_out else ""
    if len(points) == 1:
        note = "a single network has device energy: one point, no trade-off to show" + (f"; {note}" if note else "")
    path = fg.pareto_figure([(f"{n.id} P{e.selected_pattern}", e.total_fJ, network_acc(n)) for n, _, e in points],
                            front, ctx.figs / "pareto.png", note)
    lines += [md.image(path, ctx.root, "Pareto"), ""]
    if len(points) == 1:
        lines += ["Only one network has both accuracy and device energy, so the figure is one point: see "
                  "'No device energy' for why the others have none.", ""]
    else:
        lines += ["Every network with both numbers is drawn; the Pareto set is red and joined by a dashed line.", ""]
    left = [n.id for n in ctx.networks if n.id not in {p[0].id for p in points}]
    lines.append("Energy: write + read per sample for the selected pattern (a network selected with several "
                 "patterns counts with its least-energy one). Left out (no accuracy or no device energy): "
                 + (", ".join(left) if left else "none") + ".")
    return "\n".join(lines)


def across_networks_section(ctx: Context) -> str:
    """Cross-run per-layer figures (when at least two networks have the numbers)."""
    write, read, activity = {}, {}, {}
    for net in ctx.networks:
        name = f"{net.id}: {net.label}"
        point = energy_point(ctx, net)
        if point is not None:
            job, e = point
            key = str(e.selected_pattern)
            write[name] = {layer: v[key] for layer, v in en.write_by_layer(en.last_write_epoch(job.energy)).items()}
            read[name] = {layer: v[key] for layer, v in en.read_by_layer(en.last_activity(job.energy)).items()}
        if net.trained is not None and en.activity_epochs(net.trained.energy):
            activity[name] = en.activity_by_layer(en.last_activity(net.trained.energy))
    lines = []
    if len(write) > 1:
        path = fg.energy_by_network_figure(write, read, ctx.figs / "energy_by_network.png")
        lines += [md.image(path, ctx.root, "energy by network"), ""]
    if len(activity) > 1:
        path = fg.activity_by_network_figure(activity, ctx.figs / "activity_by_network.png")
        lines += [md.image(path, ctx.root, "activity by network"), ""]
    return "\n".join(["## Per layer, across networks", "", *lines]) if lines else ""


def cmos_section(ctx: Context) -> str:
    """ANN and SNN energy on 45 nm CMOS per network, beside the device energy, all in pJ."""
    rows, constants = [], set()
    for net in ctx.networks:
        cmos = en.last_cmos(net.trained.energy) if net.trained else {}
        if cmos.get("ann_pJ") is not None:
            ratio = cmos.get("ann_over_snn")
            point = energy_point(ctx, net)
            device_pJ = md.num(point[1].total_fJ / 1000) if point else None
            rows.append([net.id, net.label, md.num(cmos["ann_pJ"]), md.num(cmos.get("snn_pJ")), md.num(ratio),
                         device_pJ])
            constants.add((cmos.get("e_mac_pJ"), cmos.get("e_ac_pJ")))
    if not rows:
        return ""
    note = "; ".join(f"E_MAC {mac} pJ, E_AC {ac} pJ" for mac, ac in sorted(constants, key=str))
    return "\n".join(["## CMOS comparison (per inference sample)", "",
                      f"DIET-SNN method, 45 nm, {note}, as recorded in each run's energy.json "
                      "(quest/monitors/activity.py). One row per network: jobs sharing a training share it. "
                      "Every energy in this table is in pJ; the device column is the write + read energy of "
                      "the tables above (fJ / 1000).", "",
                      md.table(["network", "settings", "ANN pJ", "SNN pJ", "ANN / SNN", "device pJ (write + read)"],
                               rows)])


def seeds_section(ctx: Context) -> str:
    """Mean ± std over the seeds of each setting (a setting run with one seed says n = 1)."""
    if not ctx.multirun:
        return ""
    rows = []
    for label, nets in replicate_groups(ctx.networks).items():
        points = [energy_point(ctx, n) for n in nets]
        cmos = [en.last_cmos(n.trained.energy).get("ann_over_snn") if n.trained else None for n in nets]
        rows.append([label, ", ".join(n.id for n in nets), len(nets),
                     md.mean_std([network_acc(n) for n in nets]),
                     md.mean_std([p[1].total_fJ for p in points if p]),
                     md.mean_std(cmos)])
    return "\n".join(["## Over seeds", "",
                      "Each setting's networks that differ only in `seed`: mean ± sample std over its seeds "
                      "(n = the number of values; a setting run with one seed shows its value with n = 1).", "",
                      md.table(["setting", "networks", "seeds", "test acc", "device energy fJ/sample",
                                "ANN/SNN (CMOS)"], rows)])


# -- per-network figures ---------------------------------------------------------------------------
def shown_patterns(totals: dict[str, float], selected: set[str]) -> list[str]:
    """All patterns when few; else the selected ones, the least- and the most-energy one."""
    if len(totals) <= MAX_PATTERNS_SHOWN:
        return list(totals)
    keep = set(selected) | {min(totals, key=totals.get), max(totals, key=totals.get)}
    return [p for p in totals if p in keep]


def shown_note(shown: list[str], totals: dict[str, float]) -> str:
    """A figure subtitle when only some patterns are drawn."""
    if len(shown) == len(totals):
        return ""
    return f"{len(shown)} of {len(totals)} patterns: the selected ones and those of least and most energy"


def layer_table(job: Job, pattern: int | None) -> str:
    """Per layer, last epoch: activity, and energy for the pattern."""
    act = en.last_activity(job.energy).get("layers") or {}
    write_epoch = en.last_write_epoch(job.energy)
    write = en.write_by_layer(write_epoch)
    read = en.read_by_layer(en.last_activity(job.energy))
    trans = write_epoch.get("layers") or {}
    key = str(pattern)
    rows = []
    for layer in dict.fromkeys([*act, *trans]):
        a, t = act.get(layer, {}), trans.get(layer, {})
        rows.append([
            layer, md.num(a.get("spike_rate")), md.num(a.get("input_spike_rate")), md.pct(a.get("weight_sparsity")),
            md.num(a.get("aor")), md.pct(t.get("changed_share"), 2), md.pct(t.get("non_adjacent_share_of_changes")),
            md.num(write.get(layer, {}).get(key)), md.num(read.get(layer, {}).get(key)),
        ])
    p = f"P{pattern}" if pattern else "pattern"
    return md.table(["layer", "spike rate", "input spike rate", "weight sparsity", "AOR", "weights changed",
                     "non-adjacent share of changes", f"write fJ/sample ({p})", f"read fJ/sample ({p})"], rows)


def network_figures(ctx: Context, net: Network) -> list[str]:
    """The network's figures (each only when its numbers exist), as Markdown image lines."""
    job = net.trained
    assert job is not None
    out = ctx.figs / net.slug
    selected = {str(e.selected_pattern) for j in net.jobs if (e := ctx.energy[j.name]).selected_pattern}
    states = en.pattern_states(job.energy)
    lines = []
    last = en.last_write_epoch(job.energy)
    write_panels = {f"last epoch (epoch {last.get('epoch')}, 0-based)": en.write_by_layer(last)}
    write = en.write_section(job.energy)
    for name, window in en.write_windows(job.energy).items():
        lo, hi = (write.get("windows_batches") or {}).get(name, [None, None])
        batches = f", batches {lo}-{hi - 1}" if isinstance(lo, int) and isinstance(hi, int) else ""
        title = f"window '{name}': epoch {write.get('windows_epoch')}{batches}"
        write_panels[title] = en.write_by_layer(window)
    write_panels = {t: v for t, v in write_panels.items() if v}
    if write_panels:
        totals = en.totals_by_pattern(next(iter(write_panels.values())))
        shown = shown_patterns(totals, selected)
        path = fg.pattern_bars_figure(write_panels, shown, selected, states, "write energy per training sample (fJ)",
                                      out / "write_energy.png", shown_note(shown, totals))
        lines.append(md.image(path, ctx.root, "write energy per layer and pattern"))
    shares = en.transition_shares(last)
    if shares:
        k = len(next(iter(shares.values()))[0])
        path = fg.transitions_figure(shares, en.weight_levels(job.energy, k), out / "transitions.png")
        lines.append(md.image(path, ctx.root, "weight-level transitions"))
    if en.activity_epochs(job.energy):
        series = {k: en.activity_series(job.energy, k) for k in en.ACTIVITY_KEYS}
        lines.append(md.image(fg.activity_figure(series, out / "activity.png"), ctx.root, "activity over epochs"))
    epoch = en.last_activity(job.energy)
    read = en.read_by_layer(epoch)
    if read:
        totals = en.totals_by_pattern(read)
        spread = max(totals.values()) / min(totals.values()) - 1 if totals and min(totals.values()) > 0 else 0.0
        title = (f"read energy, epoch {epoch.get('epoch')}: patterns differ by {100 * spread:.2g}% in total\n"
                 "bars: each pattern minus its layer's mean over all patterns")
        shown = shown_patterns(totals, selected)
        path = fg.pattern_bars_figure({title: read}, shown, selected, states,
                                      "read energy - layer mean (fJ per inference sample)",
                                      out / "read_energy.png", shown_note(shown, totals), centered=True)
        lines.append(md.image(path, ctx.root, "read energy per layer and pattern"))
    history = hl.health_history(job)
    if history:
        lines.append(md.image(hl.health_figure(history, out / "layer_health.png"), ctx.root, "layer health"))
    return lines


def per_run_networks(ctx: Context, per_run: str) -> list[Network]:
    """Which completed networks get their own figures."""
    done = [n for n in ctx.networks if n.trained is not None]
    if per_run == "none":
        return []
    if per_run == "all" or not ctx.multirun:
        return done
    points, front = pareto_networks(ctx)
    chosen = {points[i][0].id for i in front}
    accurate = [n for n in done if network_acc(n) is not None]
    if accurate:
        chosen.add(max(accurate, key=network_acc).id)
    return [n for n in done if n.id in chosen]


def per_run_section(ctx: Context, per_run: str) -> str:
    chosen = per_run_networks(ctx, per_run)
    if not chosen:
        return ""
    lines = ["## Per network", ""]
    if ctx.multirun and per_run == "auto":
        lines += ["Figures for the Pareto set and the most accurate network (`--per-run all` draws every "
                  "completed network).", ""]
    for net in chosen:
        job = net.trained
        e = ctx.energy[job.name]
        lines += [f"### {net.id}: {net.label}", "",
                  f"From job {ctx.job_ids[job.name]}; files in {md.code(f'{REPORT_FIGS}/{net.slug}/')}. "
                  + (f"Device energy: {e.reason}." if e.reason else f"Selected pattern P{e.selected_pattern}; "
                     "the selected pattern has a black edge in the bar figures."), ""]
        if job.energy:
            lines += [layer_table(job, e.selected_pattern), ""]
        lines += [f for img in network_figures(ctx, net) for f in (img, "")]
    return "\n".join(lines)


# -- entry points ----------------------------------------------------------------------------------
def write_report(folder: str | Path, per_run: str = "auto") -> Path:
    """Write report.md and report_figs/ into `folder`; returns the report's path."""
    if per_run not in PER_RUN_CHOICES:
        raise ValueError(f"per_run={per_run!r}: allowed {', '.join(PER_RUN_CHOICES)}")
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    ctx = build_context(root)
    shutil.rmtree(ctx.figs, ignore_errors=True)  # figures of an earlier report
    claim_rows = cl.claims(ctx.jobs)
    write_json_atomic(root / cl.CLAIMS_FILE, claim_rows)
    sections = [
        header(ctx), jobs_section(ctx), unfinished_section(ctx), networks_section(ctx),
        not_realizable_section(ctx), neuron_hosting_section(ctx), cl.claims_section(claim_rows, ctx.job_ids), accuracy_section(ctx),
        seeds_section(ctx), pareto_section(ctx),
        across_networks_section(ctx), cmos_section(ctx), nonideal_section(ctx), per_run_section(ctx, per_run),
    ]
    report = root / REPORT_FILE
    report.write_text("\n\n".join(s for s in sections if s) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """quest-report FOLDER [--per-run auto|all|none]"""
    parser = argparse.ArgumentParser(
        prog="quest-report",
        description="Write report.md and report_figs/ (PNG) into a QUEST run or multirun folder.",
    )
    parser.add_argument("folder", type=Path, help="a run folder, or a multirun folder with job folders below it")
    parser.add_argument("--per-run", choices=PER_RUN_CHOICES, default="auto",
                        help="per-network figures: auto (single run: it; multirun: the Pareto set and the most "
                             "accurate network), all, or none")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.folder, args.per_run)
    except FileNotFoundError as e:
        print(f"quest-report: {e}", file=sys.stderr)
        return 2
    figures = sorted((report.parent / REPORT_FIGS).rglob("*.png"))
    print(f"{report} ({len(figures)} figure(s) in {report.parent / REPORT_FIGS})")
    return 0
