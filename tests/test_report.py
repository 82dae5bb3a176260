"""quest.report: pure functions on hand-made data, and the report of a real small multirun."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest
from PIL import Image

from conftest import ROOT, TINY, run_train, subprocess_env
from quest.report import main, write_report
from quest.report.jobs import Job, find_jobs, group_networks, training_key
from quest.report.pareto import pareto_front


# -- hand-made data ----------------------------------------------------------------------------------
def make_config(
    folder: str, neuron: str = "if_hard", bits: int | None = 2, pattern: int | str = "best"
) -> dict[str, Any]:
    """The parts of a resolved train config that matter here, shaped like the real one."""
    return {
        "seed": 42,
        "neuron": {"name": neuron, "theta": 0.5},
        "precision": {"bits": bits, "quantize_membrane": bits is not None},
        "pattern": {"selection": pattern},
        "paths": {"output_dir": folder},
        "logger": {"csv": {"save_dir": folder}},
        "trainer": {"max_epochs": 2, "default_root_dir": folder, "enable_progress_bar": False},
        "callbacks": {
            "model_checkpoint": {"dirpath": f"{folder}/checkpoints", "monitor": "val/acc"},
            "transition_monitor": {"pattern": pattern, "bits": bits, "subset": "all"},
            "activity_monitor": {"pattern": pattern, "num_batches": 4},
        },
    }


def make_job(root: Path, name: str, overrides: list[str], config: dict | None = None, **results: Any) -> Job:
    """A job folder with a results.json (status completed unless given)."""
    folder = root / name
    folder.mkdir(parents=True)
    record = {"status": "completed", "overrides": overrides, **results}
    if config is not None:
        record["config"] = config
    (folder / "results.json").write_text(json.dumps(record))
    return Job(folder, name, record, None)


def test_pareto_front_on_hand_made_points():
    points = [(10.0, 0.80), (20.0, 0.85), (15.0, 0.70), (30.0, 0.85), (5.0, 0.60), (20.0, 0.90)]
    # (20, .85) and (30, .85) lose to (20, .90); (15, .70) to (10, .80)
    assert pareto_front(points) == [4, 0, 5]


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 0.5)]) == [0]
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]  # equal points dominate neither
    assert pareto_front([(1.0, 0.5), (1.0, 0.6)]) == [1]  # same energy, more accuracy
    assert pareto_front([(2.0, 0.6), (1.0, 0.6)]) == [1]  # same accuracy, less energy


def test_training_key_ignores_pattern_selection_and_run_folders(tmp_path):
    a = make_job(tmp_path, "a", [], make_config("/sweep/a"))
    b = make_job(tmp_path, "b", [], make_config("/sweep/b", pattern=6))
    lif = make_job(tmp_path, "c", [], make_config("/sweep/c", neuron="lif_soft"))
    fp32 = make_job(tmp_path, "d", [], make_config("/sweep/d", bits=None, pattern=6))
    assert training_key(a) == training_key(b)
    assert len({training_key(j) for j in (a, lif, fp32)}) == 3


def test_training_key_from_overrides_when_no_config(tmp_path):
    a = make_job(tmp_path, "a", ["precision=2", "neuron=if_hard", "logger=csv"])
    b = make_job(tmp_path, "b", ["neuron=if_hard", "pattern=6", "precision='2'", "pattern.selection=3"])
    c = make_job(tmp_path, "c", ["precision=3", "neuron=if_hard"])
    assert training_key(a) == training_key(b) != training_key(c)


def test_grouping_merges_jobs_that_differ_only_in_pattern(tmp_path):
    jobs = [
        make_job(tmp_path, "n=if_hard", ["neuron=if_hard", "precision=2"], make_config("/s/1")),
        make_job(tmp_path, "n=if_hard,p=6", ["neuron=if_hard", "precision=2", "pattern=6"],
                 make_config("/s/2", pattern=6)),
        make_job(tmp_path, "n=lif_soft", ["neuron=lif_soft", "precision=2"], make_config("/s/3", neuron="lif_soft")),
        make_job(tmp_path, "n=lif_soft,p=1", ["neuron=lif_soft", "precision=2", "pattern=1"],
                 make_config("/s/4", neuron="lif_soft", pattern=1), status="failed", error="boom"),
    ]
    networks = group_networks(jobs)
    assert [[j.name for j in n.jobs] for n in networks] == [
        ["n=if_hard", "n=if_hard,p=6"], ["n=lif_soft", "n=lif_soft,p=1"]
    ]
    assert [n.label for n in networks] == ["neuron=if_hard", "neuron=lif_soft"]
    assert networks[1].trained is jobs[2] and networks[1].status == "completed"


def test_report_of_unfinished_jobs_only(tmp_path):
    make_job(tmp_path, "bad", ["precision=4", "neuron=if_soft"], status="failed",
             error_kind="training error", error="out of memory")
    make_job(tmp_path, "cut", ["precision=2", "neuron=if_soft"], status="running", host="another-machine")
    make_job(tmp_path, "gone", ["precision=3", "neuron=if_soft"], status="running")  # no process holds it
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    report = write_report(tmp_path).read_text()
    rows = job_rows(report)
    assert len(rows) == 4
    assert "**failed**: training error: out of memory" in rows["bad"]
    assert "**running**: no result yet: still training" in rows["cut"]  # another machine's: cannot tell
    assert "**killed**: its process ended without recording an end" in rows["gone"]
    assert "**unreadable**" in rows["broken"]
    assert "No network has both a test accuracy and device energy numbers." in report


def test_cli_answers_a_folder_without_runs(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert main([str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


# -- reading report.md -------------------------------------------------------------------------------
def job_rows(report: str) -> dict[str, str]:
    """Job folder -> its row of the Jobs table (as text)."""
    folders = dict(re.findall(r"^- (J\d+): `(.+)`$", report, flags=re.M))
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (J\d+) \|.*$", report, flags=re.M)}
    return {folders[j]: row for j, row in rows.items()}


def cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def linked_images(report: str, root: Path) -> list[Path]:
    return [root / p for p in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)]


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200
        im.verify()
    assert mpimg.imread(path).ndim == 3


# -- a real multirun -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2 x 2 grid (precision 2, 3 x IF_Hard, LIF_Soft), a pattern-only sibling, a job that fails on
    its config, and a hand-made interrupted job, all in one sweep folder."""
    root = tmp_path_factory.mktemp("report_sweep")
    base = ["-m", *TINY, f"hydra.sweep.dir={root}"]
    grid = run_train([*base, "precision=2,3", "neuron=if_hard,lif_soft"], timeout=1800)
    assert grid.returncode == 0, grid.stderr[-3000:]
    sibling = run_train([*base, "precision=2", "neuron=if_hard", "pattern=6"])
    assert sibling.returncode == 0, sibling.stderr[-3000:]
    run_train([*base, "encoding.time_steps=0"])  # recorded as a failed job; the sweep goes on
    interrupted = root / "interrupted"
    interrupted.mkdir()
    record = {"status": "running", "overrides": ["precision=2", "neuron=if_soft"]}
    (interrupted / "results.json").write_text(json.dumps(record))
    return root


@pytest.fixture(scope="module")
def report(sweep) -> str:
    """report.md written by the command line (python -m quest.report)."""
    proc = subprocess.run([sys.executable, "-m", "quest.report", str(sweep)], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (sweep / "report.md").read_text()


def find_row(rows: dict[str, str], *parts: str, without: str = "pattern") -> str:
    """The one row whose job folder names all `parts` and not `without`."""
    (row,) = [r for name, r in rows.items() if all(p in name for p in parts) and without not in name]
    return row


@pytest.mark.slow
def test_one_row_per_job(sweep, report):
    rows = job_rows(report)
    assert len(rows) == len(list(sweep.rglob("results.json"))) == 7
    done = find_row(rows, "neuron=if_hard", "precision=2")
    assert "pattern" not in cells(done)[2]
    acc = float(cells(done)[4])
    assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_realizable_and_not_realizable_jobs(report):
    rows = job_rows(report)
    hard2 = cells(find_row(rows, "neuron=if_hard", "precision=2"))
    assert re.fullmatch(r"P[1-6]", hard2[8]) and float(hard2[9]) > 0 and float(hard2[10]) > 0
    # LIF on the non-leaky card: the synapses' energy is reported all the same (issue 16 item 7)
    lif2 = cells(find_row(rows, "neuron=lif_soft", "precision=2"))
    assert re.fullmatch(r"P[1-6]", lif2[8]) and float(lif2[9]) > 0 and float(lif2[10]) > 0
    for neuron, precision in (("if_hard", "3"), ("lif_soft", "3")):
        row = cells(find_row(rows, f"neuron={neuron}", f"precision={precision}"))
        assert row[9].startswith("not realizable on sk_mtj_3state:"), row
        assert row[10] == "not realizable" and float(row[11]) > 0  # the CMOS ratio does not need the device
    assert "cannot host LIF neurons" in report and "3-bit weights need 7 states" in report
    pareto = report.split("## Accuracy / device energy: Pareto set")[1].split("\n## ")[0]
    pareto_rows = [cells(l) for l in pareto.splitlines() if l.startswith("| N")]
    assert 1 <= len(pareto_rows) <= 2  # only the 2-bit networks have device energy on the 3-state card
    assert all("precision=2" in r[1].split(",") for r in pareto_rows)


@pytest.mark.slow
def test_failed_and_interrupted_jobs_appear_with_their_reason(report):
    rows = job_rows(report)
    failed = cells(find_row(rows, "encoding.time_steps=0"))
    assert failed[3] == "**failed**: config error: encoding.time_steps=0: must be an integer >= 1"
    assert failed[4:] == ["-"] * 8  # no numbers, not zeros
    # a hand-made "running" record that no process holds (and names no host): a killed job
    assert cells(rows["interrupted"])[3].startswith("**killed**: its process ended")


@pytest.mark.slow
def test_pattern_sibling_is_the_same_network(sweep, report):
    rows = job_rows(report)
    trained = cells(find_row(rows, "neuron=if_hard", "precision=2"))
    sibling = cells(find_row(rows, "neuron=if_hard", "pattern=6", without="lif"))
    assert trained[1] == sibling[1] and sibling[8] == "P6"
    assert sibling[3] == f"completed (training reused from {trained[0]})"
    networks = group_networks(find_jobs(sweep))
    assert sorted(len(n.jobs) for n in networks) == [1, 1, 1, 1, 1, 2]


@pytest.mark.slow
def test_figures_are_readable_pngs(sweep, report):
    images = linked_images(report, sweep)
    names = {p.name for p in images}
    assert {"accuracy.png", "pareto.png", "activity_by_network.png", "write_energy.png", "transitions.png",
            "activity.png", "read_energy.png"} <= names
    for path in images:
        assert_png(path)
    assert sorted(sweep.joinpath("report_figs").rglob("*.png")) == sorted(images)


@pytest.mark.slow
def test_single_run_report(sweep, tmp_path):
    (job,) = [p for p in sweep.iterdir()
              if "neuron=if_hard" in p.name and "precision=2" in p.name and "pattern" not in p.name]
    run = shutil.copytree(job, tmp_path / job.name, ignore=shutil.ignore_patterns("checkpoints", "csv"))
    report = write_report(run).read_text()
    assert len(job_rows(report)) == 1 and "## Per network" in report
    images = linked_images(report, run)
    assert {p.name for p in images} == {"write_energy.png", "transitions.png", "activity.png", "read_energy.png",
                                        "layer_health.png"}
    assert all(p.parent.parent == run / "report_figs" for p in images)
    for path in images:
        assert_png(path)


@pytest.mark.slow
def test_claims_table_numbers_come_from_energy_json(sweep, report):
    rows = {r["claim"]: r for r in json.loads((sweep / "claims.json").read_text())}
    assert "## Paper claims" in report and len(rows) == 13
    assert all({"claim", "paper", "measured", "verdict", "runs"} <= set(r) for r in rows.values())
    rate = rows["mean spike rate of the quantized layers"]
    (run,) = rate["runs"]
    assert (run["precision"], run["neuron"], run["width_mult"], run["time_steps"]) == ("2", "if_hard", 0.125, 4)
    energy = json.loads((sweep / run["job"] / "energy.json").read_text())
    act = energy["activity"]["epochs"][-1]["layers"]
    quantized = list(energy["write"]["epochs"][-1]["layers"])
    assert quantized == ["conv2", "conv3", "conv4", "conv5", "conv6"]
    mean_rate = sum(act[l]["spike_rate"] for l in quantized) / 5
    assert rate["measured"]["per_sample"] == pytest.approx(mean_rate)
    assert rate["measured"]["per_step"] == pytest.approx(mean_rate / 4)
    assert rate["verdict"] == "not measured at this scale"
    sparsity = [act[l]["weight_sparsity"] for l in quantized]
    assert rows["weight sparsity, mean over quantized layers"]["measured"] == pytest.approx(sum(sparsity) / 5)
    assert rows["weight sparsity, sparsest layer"]["measured"]["sparsity"] == pytest.approx(max(sparsity))
    mean_aor = sum(act[l]["aor"] for l in quantized) / 5
    assert rows["AOR lower than the spike rate by"]["measured"]["ratio"] == pytest.approx(mean_rate / mean_aor)
    write = energy["write"]["epochs"][-1]["layers"]
    least = {l: min(write[l]["write_energy"], key=lambda p: write[l]["write_energy"][p]["per_sample_fJ"]) for l in quantized}
    p6 = rows["pattern 6 has the lowest write energy in every layer"]
    assert all(f"P{least[l]}" in p6["measured"][l] for l in quantized)
    assert p6["verdict"] == ("holds" if all("P6" in v for v in p6["measured"].values()) else "does not hold")
    windows = [rep["non_adjacent_share_of_changes"] for w in energy["write"].get("windows", {}).values()
               for rep in w.get("layers", {}).values()] or [write[l]["non_adjacent_share_of_changes"] for l in quantized]
    moves = rows["weights move only between adjacent levels (no -1 <-> +1)"]
    assert moves["measured"] == pytest.approx(max(windows))
    configured = json.loads((sweep / run["job"] / "results.json").read_text())["config"]["pattern"]["selection"]
    chosen = str(configured if isinstance(configured, int) else energy["activity"]["epochs"][-1]["selected_pattern"])
    read = {l: act[l]["read_energy_per_sample_fJ"][chosen] for l in quantized}
    top = rows["activation energy is highest in the first quantized layer"]["measured"]
    assert top["read_fJ"] == pytest.approx(read) and top["highest"] == max(read, key=read.get)
    cmos = energy["activity"]["epochs"][-1]["cmos"]["ann_over_snn"]
    assert rows["energy efficiency vs the ANN (45 nm CMOS)"]["measured"] == pytest.approx(cmos)
    # no FP32 baseline in this sweep: the relative accuracy claims say so
    assert rows["2/3/4-bit within a small margin of FP32, if_hard"]["verdict"] == "not measured"


@pytest.mark.parametrize(
    "content, says",
    [
        ("not json{", "energy.json could not be read (not JSON)"),
        ("[1, 2]", "energy.json is not an energy record: a JSON list, not an object"),
        ('{"write": 5}', "energy.json is not an energy record: write is a int, not an object"),
        ('{"write": {"epochs": 5}}', "energy.json is not an energy record: write.epochs is not a list of objects"),
    ],
)
def test_report_names_an_unreadable_or_wrong_typed_energy_record(tmp_path, content, says):
    """An unreadable energy.json used to read as missing, and a wrong-typed one crashed quest-report."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"status": "completed", "test_acc": 0.5, "overrides": []}))
    (run / "energy.json").write_text(content)
    report = write_report(run).read_text()
    assert says in report and "no energy.json" not in report
