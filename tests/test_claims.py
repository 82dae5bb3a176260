"""The paper-claims table (quest/report/claims.py) on hand-made jobs: verdict rules, units, scale.

Its numbers on a real sweep are checked against energy.json in tests/test_report.py."""
from __future__ import annotations

import json

import pytest

from quest.report.claims import ACC_MARGIN, HOLDS, FAILS, MISSING, SCALE, claims
from quest.report.jobs import Job


def job(tmp_path, name, bits, neuron, acc, epochs=2, width=0.25, source="npz", energy=None, start=None) -> Job:
    config = {"precision": {"bits": bits}, "neuron": {"name": neuron}, "model": {"width_mult": width},
              "data": {"name": "cifar10", "source": source}, "encoding": {"time_steps": 4},
              "module": {"start_spike_rate": start}}
    results = {"status": "completed", "overrides": [], "config": config, "test_acc": acc, "epochs": epochs}
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))
    return Job(folder, name, results, energy)


def energy(spike_rates, aors, sparsity, read, write, non_adjacent, ratio, device="sk_mtj_3state"):
    layers = {l: {"spike_rate": spike_rates[l], "aor": aors[l], "weight_sparsity": sparsity[l],
                  **({"read_energy_per_sample_fJ": read[l]} if l in read else {})} for l in spike_rates}
    wlayers = {l: {"write_energy": {p: {"per_sample_fJ": e} for p, e in write[l].items()},
                   "non_adjacent_share_of_changes": non_adjacent[l]} for l in write}
    return {"device": {"name": device},
            "activity": {"epochs": [{"epoch": 1, "selected_pattern": 6, "layers": layers,
                                     "cmos": {"ann_over_snn": ratio}}]},
            "write": {"epochs": [{"epoch": 1, "layers": wlayers}]}}


def by_claim(rows):
    return {r["claim"]: r for r in rows}


def test_rows_units_and_verdicts(tmp_path):
    e = energy(
        spike_rates={"conv1": 1.0, "conv2": 0.6, "conv3": 0.2}, aors={"conv1": 0.5, "conv2": 0.1, "conv3": 0.1},
        sparsity={"conv1": 0.0, "conv2": 0.5, "conv3": 0.9}, read={"conv2": {"6": 9.0, "1": 1.0}, "conv3": {"6": 3.0}},
        write={"conv2": {"6": 1.0, "1": 2.0}, "conv3": {"6": 4.0, "1": 4.0}},
        non_adjacent={"conv2": 0.0, "conv3": 0.01}, ratio=50.0)
    jobs = [job(tmp_path, "a", 2, "if_hard", 0.60, energy=e), job(tmp_path, "b", None, "if_hard", 0.64),
            job(tmp_path, "c", 3, "if_hard", 0.10)]
    rows = by_claim(claims(jobs))
    assert len(claims(jobs)) == 13
    assert all({"claim", "paper", "measured", "verdict", "runs"} <= set(r) for r in rows.values())
    acc = rows["test accuracy, 2-bit IF_Hard"]
    assert acc["measured"] == 0.60 and acc["verdict"] == SCALE and acc["runs"][0]["width_mult"] == 0.25
    margin = rows["2/3/4-bit within a small margin of FP32, if_hard (only 2-bit, 3-bit run)"]
    assert margin["measured"]["2-bit"] == pytest.approx(-0.04) and margin["measured"]["3-bit"] == pytest.approx(-0.54)
    assert margin["verdict"] == FAILS  # 3-bit at chance; judged at any scale
    assert rows["2/3/4-bit within a small margin of FP32, lif_soft"]["verdict"] == MISSING
    rate = rows["mean spike rate of the quantized layers"]
    # quantized layers = those with write records (conv2, conv3): (0.6 + 0.2) / 2 per sample, / T=4 per step
    assert rate["measured"] == {"per_sample": pytest.approx(0.4), "per_step": pytest.approx(0.1)}
    assert rows["weight sparsity, mean over quantized layers"]["measured"] == pytest.approx(0.7)
    assert rows["weight sparsity, sparsest layer"]["measured"] == {"layer": "conv3", "sparsity": 0.9}
    assert rows["AOR lower than the spike rate by"]["measured"]["ratio"] == pytest.approx(0.4 / 0.1)
    p6 = rows["pattern 6 has the lowest write energy in every layer"]
    assert p6["measured"] == {"conv2": ["P6"], "conv3": ["P1", "P6"]} and p6["verdict"] == HOLDS
    moves = rows["weights move only between adjacent levels (no -1 <-> +1)"]
    assert moves["measured"] == 0.01 and moves["verdict"] == FAILS
    read = rows["activation energy is highest in the first quantized layer"]
    assert read["measured"]["highest"] == "conv2" and read["verdict"] == HOLDS
    assert rows["energy efficiency vs the ANN (45 nm CMOS)"]["measured"] == 50.0


def test_relative_claim_holds_within_margin_and_scale_claims_at_paper_scale(tmp_path):
    jobs = [job(tmp_path, "fp", None, "lif_soft", 0.90, epochs=100, width=1.0)]
    jobs += [job(tmp_path, f"q{b}", b, "lif_soft", 0.90 - ACC_MARGIN + 0.001, epochs=100, width=1.0) for b in (2, 3, 4)]
    jobs += [job(tmp_path, "h", 2, "if_hard", 0.88, epochs=100, width=1.0)]
    rows = by_claim(claims(jobs))
    assert rows["2/3/4-bit within a small margin of FP32, lif_soft"]["verdict"] == HOLDS
    assert rows["test accuracy, 2-bit IF_Hard"]["verdict"] == HOLDS  # 0.88 >= 0.896 - 0.03, at the paper's scale
    subset = [job(tmp_path, "s", 2, "if_hard", 0.95, epochs=100, width=1.0, source="bundled")]
    assert by_claim(claims(subset))["test accuracy, 2-bit IF_Hard"]["verdict"] == SCALE


def test_pattern_claim_needs_the_3_state_card(tmp_path):
    e = energy({"conv2": 0.1}, {"conv2": 0.1}, {"conv2": 0.5}, {"conv2": {"1": 1.0}}, {"conv2": {"1": 1.0}},
               {"conv2": 0.0}, 10.0, device="rram_hfox_4level")
    rows = by_claim(claims([job(tmp_path, "r", 2, "if_hard", 0.5, energy=e)]))
    assert rows["pattern 6 has the lowest write energy in every layer"]["verdict"] == MISSING


def test_fp32_margin_compares_runs_of_the_fp32_runs_length_one_row_per_recipe(tmp_path):
    """A 20-epoch headline beside 3-epoch grid runs: the FP32 comparison uses the 3-epoch runs, the
    paper's recipe and the opt-in start calibration each get their own row."""
    jobs = [job(tmp_path, "fp", None, "if_hard", 0.60, epochs=3),
            job(tmp_path, "long", 2, "if_hard", 0.80, epochs=20), job(tmp_path, "q2", 2, "if_hard", 0.58, epochs=3),
            job(tmp_path, "p3", 3, "if_hard", 0.10, epochs=1), job(tmp_path, "p4", 4, "if_hard", 0.10, epochs=1),
            job(tmp_path, "c3", 3, "if_hard", 0.58, epochs=3, start=0.1),
            job(tmp_path, "c4", 4, "if_hard", 0.575, epochs=3, start=0.1)]
    rows = by_claim(claims(jobs))
    assert rows["test accuracy, 2-bit IF_Hard"]["measured"] == 0.80  # the longest run
    paper = rows["2/3/4-bit within a small margin of FP32, if_hard (only 2-bit run)"]
    assert [r["job"] for r in paper["runs"]] == ["fp", "q2"] and paper["measured"]["2-bit"] == pytest.approx(-0.02)
    assert all(r["recipe"] == "paper" for r in paper["runs"])
    cal = rows["2/3/4-bit within a small margin of FP32, if_hard, with start_spike_rate=0.1 (opt-in, not the paper's)"]
    assert [r["job"] for r in cal["runs"]] == ["fp", "q2", "c3", "c4"]
    assert cal["measured"]["4-bit"] == pytest.approx(-0.025) and cal["verdict"] == HOLDS
    assert [r["recipe"] for r in cal["runs"]][2:] == ["start_spike_rate=0.1"] * 2
