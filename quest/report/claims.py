"""The paper's claims (REFERENCE.md section 6) against what a folder of runs measured.

Each claim is one row: claim, the paper's value, the measured value, a verdict and the runs it came
from (job, precision, neuron, epochs, data, width). Verdicts:

- "holds" / "does not hold": judged from the runs, by the rule stated in the row's `rule`;
- "not measured at this scale": the claim is about the paper's scale (full CIFAR-10, VGG8 at width
  1.0, 100 epochs) and the runs are smaller; the measured value is still given;
- "not measured": no run in the folder has the numbers (e.g. no FP32 baseline, no device energy).

Units follow REFERENCE.md section 9: a spike rate is spikes per neuron per sample summed over the T
time steps (as energy.json stores it; the paper's definition); `per step` divides it by T. AOR is
effective operations / all operations (each operation one input position x weight at one time step).
Accuracy is a fraction in [0, 1] (the paper's 89.6% is 0.896).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from quest.report import energy as en
from quest.report import markdown as md
from quest.report.jobs import Job, neuron_label, precision_label

CLAIMS_FILE = "claims.json"
PAPER_EPOCHS = 100
ACC_MARGIN = 0.03  # "within a small margin of FP32": the paper's number was lost in extraction; our reading
RATE_TOLERANCE = 0.25  # relative tolerance for the spike-rate, AOR-ratio and ANN-efficiency claims
NEURONS = ("if_hard", "if_soft", "lif_hard", "lif_soft")
HOLDS, FAILS, SCALE, MISSING = "holds", "does not hold", "not measured at this scale", "not measured"


# -- the runs --------------------------------------------------------------------------------------
def _cfg(job: Job, *keys: str) -> Any:
    node: Any = job.config
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return node


def run_info(job: Job) -> dict[str, Any]:
    """What a row says about a run it used."""
    data = _cfg(job, "data") or {}
    subset = data.get("train_subset")
    source = data.get("source")
    return {
        "job": job.name,
        "precision": precision_label(job),
        "neuron": neuron_label(job),
        "epochs": job.results.get("epochs"),
        "data": f"{data.get('name', '?')} ({source}{f', {subset} training images' if subset else ''})",
        "width_mult": _cfg(job, "model", "width_mult"),
        "time_steps": _cfg(job, "encoding", "time_steps"),
        "recipe": recipe(job),
    }


def recipe(job: Job) -> str:
    """"paper" for the paper's recipe, else the opt-in remedy it used (module.start_spike_rate)."""
    rate = _cfg(job, "module", "start_spike_rate")
    return "paper" if rate is None else f"start_spike_rate={rate}"


def paper_scale(job: Job) -> bool:
    """Full CIFAR-10 (not the bundled subset, no train_subset), width 1.0, at least 100 epochs."""
    data = _cfg(job, "data") or {}
    full_data = data.get("source") in ("npz", "torchvision") and not data.get("train_subset")
    return bool(full_data and _cfg(job, "model", "width_mult") == 1.0 and (job.results.get("epochs") or 0) >= PAPER_EPOCHS)


def _completed(jobs: list[Job]) -> list[Job]:
    return [j for j in jobs if j.status == "completed"]


def _pick(jobs: list[Job], precision: str, neuron: str, like: Job | None = None, how: str | None = None) -> Job | None:
    """The completed job of that precision and neuron with the most epochs (then best accuracy);
    with `like`, only jobs trained as long on the same data at the same width (a fair comparison);
    with `how`, only jobs of that recipe."""
    found = [j for j in _completed(jobs) if precision_label(j) == precision and neuron_label(j) == neuron
             and (how is None or recipe(j) == how)]
    if like is not None:
        scale = lambda j: (j.results.get("epochs"), run_info(j)["data"], _cfg(j, "model", "width_mult"))  # noqa: E731
        found = [j for j in found if scale(j) == scale(like)]
    return max(found, key=lambda j: (j.results.get("epochs") or 0, j.results.get("test_acc") or 0.0), default=None)


def _headline(jobs: list[Job]) -> Job | None:
    """The run the paper's per-layer claims are about: 2-bit IF_Hard (else any 2-bit, else any quantized)."""
    job = _pick(jobs, "2", "if_hard")
    if job is None:
        done = [j for j in _completed(jobs) if precision_label(j) not in ("fp32", "?") and j.energy]
        job = next((j for j in done if precision_label(j) == "2"), done[0] if done else None)
    return job


# -- rows ------------------------------------------------------------------------------------------
def _row(claim: str, paper: Any, measured: Any, verdict: str, runs: list[Job], rule: str, unit: str = "") -> dict[str, Any]:
    return {"claim": claim, "paper": paper, "measured": measured, "verdict": verdict, "unit": unit,
            "rule": rule, "runs": [run_info(j) for j in runs]}


def _verdict(ok: bool, jobs: list[Job], scale_bound: bool) -> str:
    if scale_bound and not all(paper_scale(j) for j in jobs):
        return SCALE
    return HOLDS if ok else FAILS


def _relative(measured: float, paper: float) -> bool:
    return abs(measured - paper) <= RATE_TOLERANCE * abs(paper)


def accuracy_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    rows = []
    job = _pick(jobs, "2", "if_hard")
    claim, rule = "test accuracy, 2-bit IF_Hard", f"measured >= paper - {ACC_MARGIN} (at the paper's scale)"
    if job is None or job.results.get("test_acc") is None:
        rows.append(_row(claim, 0.896, None, MISSING, [], rule, "fraction"))
    else:
        acc = float(job.results["test_acc"])
        rows.append(_row(claim, 0.896, acc, _verdict(acc >= 0.896 - ACC_MARGIN, [job], True), [job], rule, "fraction"))
    for neuron in NEURONS:
        rows += fp32_margin_rows(jobs, neuron)
    return rows


def fp32_margin_rows(jobs: list[Job], neuron: str) -> list[dict[str, Any]]:
    """2/3/4-bit against FP32 for one neuron, each quantized run trained as long as the FP32 run:
    one row for the paper's recipe, and one per opt-in remedy that some quantized run used."""
    claim = f"2/3/4-bit within a small margin of FP32, {neuron}"
    rule = f"every quantized accuracy >= FP32 accuracy - {ACC_MARGIN}, at the FP32 run's epochs, data and width"
    unit = "accuracy difference (quantized - FP32)"
    base = _pick(jobs, "fp32", neuron)
    if base is None or base.results.get("test_acc") is None:
        quant = [j for p in ("2", "3", "4") if (j := _pick(jobs, p, neuron)) is not None]
        return [_row(claim, f"drop < {ACC_MARGIN}", None, MISSING, quant, rule + " (no FP32 run)", unit)]
    fp = float(base.results["test_acc"])
    remedies = sorted({recipe(j) for j in _completed(jobs) if neuron_label(j) == neuron} - {"paper", recipe(base)})
    rows = []
    for how in ["paper", *remedies]:
        quant = {p: j for p in ("2", "3", "4") if (j := _pick(jobs, p, neuron, like=base, how=how)) is not None}
        if how != "paper":  # a remedy row: precisions that did not need the remedy keep the paper's run
            quant = {p: quant.get(p) or _pick(jobs, p, neuron, like=base, how="paper") for p in ("2", "3", "4")}
            quant = {p: j for p, j in quant.items() if j is not None}
        label = claim if how == "paper" else f"{claim}, with {how} (opt-in, not the paper's)"
        if not quant:
            if how == "paper":
                rows.append(_row(label, f"drop < {ACC_MARGIN}", None, MISSING, [base], rule, unit))
            continue
        diffs = {f"{p}-bit": float(j.results.get("test_acc") or 0.0) - fp for p, j in quant.items()}
        used = [base, *quant.values()]
        ok = all(d >= -ACC_MARGIN for d in diffs.values())
        note = "" if len(quant) == 3 else f" (only {', '.join(diffs)} run)"
        rows.append(_row(label + note, f"drop < {ACC_MARGIN}", {"fp32": fp, **diffs}, _verdict(ok, used, False), used,
                         rule, unit))
    return rows


def _quantized_layers(job: Job) -> dict[str, dict[str, float]]:
    """Activity (last epoch) of the quantized layers: the layers the write monitor tracks, else all but conv1."""
    by_key = en.activity_by_layer(en.last_activity(job.energy))
    layers = (en.last_write_epoch(job.energy).get("layers") or {}).keys() or [
        l for l in by_key.get("spike_rate", {}) if l != "conv1"]
    return {k: {l: v[l] for l in layers if l in v} for k, v in by_key.items()}


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


def activity_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    job = _headline(jobs)
    act = _quantized_layers(job) if job is not None else {}
    used = [job] if job is not None else []
    t = _cfg(job, "encoding", "time_steps") if job is not None else None
    rows = []
    rate = _mean(act.get("spike_rate", {}))
    rule = f"|measured - paper| <= {RATE_TOLERANCE} x paper, at epoch {PAPER_EPOCHS} (paper scale)"
    unit = "spikes per neuron per sample (summed over T); mean over quantized layers"
    if rate is None:
        rows.append(_row("mean spike rate of the quantized layers", 0.13, None, MISSING, used, rule, unit))
    else:
        measured = {"per_sample": rate, "per_step": rate / t if t else None}
        rows.append(_row("mean spike rate of the quantized layers", 0.13, measured,
                         _verdict(_relative(rate, 0.13), used, True), used, rule, unit))
    sparsity = act.get("weight_sparsity", {})
    unit = "fraction of zero integer weights"
    if not sparsity:
        rows.append(_row("weight sparsity, mean over quantized layers", "> 0.60", None, MISSING, used, "mean > 0.60", unit))
        rows.append(_row("weight sparsity, sparsest layer", 0.85, None, MISSING, used, "max >= 0.85 - 0.05", unit))
    else:
        mean_s, (layer, max_s) = _mean(sparsity), max(sparsity.items(), key=lambda kv: kv[1])
        rows.append(_row("weight sparsity, mean over quantized layers", "> 0.60", mean_s,
                         _verdict(mean_s > 0.60, used, True), used, "mean > 0.60 (paper scale)", unit))
        rows.append(_row("weight sparsity, sparsest layer", 0.85, {"layer": layer, "sparsity": max_s},
                         _verdict(max_s >= 0.80, used, True), used, "max >= 0.80 (paper scale)", unit))
    aor = _mean(act.get("aor", {}))
    unit = "mean spike rate (per sample, summed over T) / mean AOR, quantized layers"
    rule = f"|measured - paper| <= {RATE_TOLERANCE} x paper (paper scale)"
    if rate is None or not aor:
        rows.append(_row("AOR lower than the spike rate by", 4.7, None, MISSING, used, rule, unit))
    else:
        ratio = rate / aor
        rows.append(_row("AOR lower than the spike rate by", 4.7, {"ratio": ratio, "per_step_ratio": ratio / t if t else None},
                         _verdict(_relative(ratio, 4.7), used, True), used, rule, unit))
    return rows


def device_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    """Write/read-energy claims, from the 2-bit IF_Hard run on its device (the paper's: Sk-MTJ 3-state)."""
    job = _headline(jobs)
    used = [job] if job is not None else []
    rows = []
    write = en.write_by_layer(en.last_write_epoch(job.energy)) if job else {}
    rule = "pattern 6 is (one of) the least in every quantized layer (last epoch's write energy, 3-state Sk-MTJ)"
    device = ((job.energy or {}).get("device") or {}).get("name") if job else None
    if device != "sk_mtj_3state" or precision_label(job) != "2":
        write = {}  # the claim (and QUEST's pattern numbering) is about 2-bit on the 3-state card
    if not write:
        rows.append(_row("pattern 6 has the lowest write energy in every layer", "P6 in every layer", None, MISSING, used,
                         rule, "fJ per training sample"))
    else:
        least = {layer: sorted(p for p, e in by_p.items() if math.isclose(e, min(by_p.values()), rel_tol=1e-9))
                 for layer, by_p in write.items()}
        ok = all("6" in ps for ps in least.values())
        rows.append(_row("pattern 6 has the lowest write energy in every layer", "P6 in every layer",
                         {layer: [f"P{p}" for p in ps] for layer, ps in least.items()}, HOLDS if ok else FAILS, used,
                         rule, "least-energy pattern(s) per layer"))
    windows = en.write_windows(job.energy) if job else {}
    sections = windows or ({"last epoch": en.last_write_epoch(job.energy)} if job else {})
    shares = [rep.get("non_adjacent_share_of_changes") for s in sections.values() for rep in (s.get("layers") or {}).values()]
    shares = [s for s in shares if s is not None]
    rule = "largest share of non-adjacent moves among changed weights == 0 (" + (
        "QUEST's epoch-1 windows" if windows else "last epoch") + ")"
    if not shares:
        rows.append(_row("weights move only between adjacent levels (no -1 <-> +1)", 0.0, None, MISSING, used, rule,
                         "share of changes"))
    else:
        worst = max(shares)
        rows.append(_row("weights move only between adjacent levels (no -1 <-> +1)", 0.0, worst,
                         HOLDS if worst == 0.0 else FAILS, used, rule, "share of changes, largest over layers"))
    read = en.read_by_layer(en.last_activity(job.energy)) if job else {}
    pattern = en.summarize(job).selected_pattern if job else None
    layer_read = {layer: by_p[str(pattern)] for layer, by_p in read.items() if str(pattern) in by_p}
    rule = "the first quantized layer has the largest read energy (selected pattern, last validation epoch)"
    if not layer_read:
        rows.append(_row("activation energy is highest in the first quantized layer", "conv2", None, MISSING, used,
                         rule, "fJ per inference sample"))
    else:
        top = max(layer_read, key=layer_read.get)
        first = next(iter(layer_read))
        rows.append(_row("activation energy is highest in the first quantized layer", first,
                         {"highest": top, "read_fJ": layer_read}, HOLDS if top == first else FAILS, used, rule,
                         "fJ per inference sample"))
    cmos = en.last_cmos(job.energy) if job else {}
    rule = f"|measured - paper| <= {RATE_TOLERANCE} x paper (paper scale)"
    ratio = cmos.get("ann_over_snn")
    rows.append(_row("energy efficiency vs the ANN (45 nm CMOS)", 93.0, ratio,
                     MISSING if ratio is None else _verdict(_relative(ratio, 93.0), used, True), used, rule,
                     "E_ANN / E_SNN per inference sample"))
    return rows


SECTIONS: tuple[Callable[[list[Job]], list[dict[str, Any]]], ...] = (accuracy_rows, activity_rows, device_rows)


def claims(jobs: list[Job]) -> list[dict[str, Any]]:
    """Every claim of REFERENCE.md section 6 as a row, from the jobs of one folder."""
    return [row for section in SECTIONS for row in section(jobs)]


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return md.num(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def claims_section(rows: list[dict[str, Any]], job_ids: dict[str, str]) -> str:
    """The "Paper claims" Markdown section (the same rows are in claims.json)."""
    table = [[r["claim"], _cell(r["paper"]), _cell(r["measured"]), r["unit"], f"**{r['verdict']}**",
              ", ".join(job_ids.get(run["job"], run["job"]) for run in r["runs"]) or None] for r in rows]
    scale = sorted({f"{run['data']}, width x{run['width_mult']}, {run['epochs']} epoch(s), T={run['time_steps']}"
                    for r in rows for run in r["runs"]})
    lines = ["## Paper claims", "",
             f"Each claim of REFERENCE.md section 6 against these runs (rows and rules also in {md.code(CLAIMS_FILE)}). "
             f"Spike rates are per neuron per sample summed over T (the paper's definition; `per_step` divides by T). "
             f"Claims about the paper's scale (full CIFAR-10, width x1.0, {PAPER_EPOCHS} epochs) say "
             f"\"{SCALE}\" for smaller runs, with the measured value.", "",
             md.table(["claim", "paper", "measured", "unit", "verdict", "runs"], table)]
    if scale:
        lines += ["", "Runs used: " + "; ".join(scale) + "."]
    return "\n".join(lines)
