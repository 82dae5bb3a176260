"""quest-report's non-ideality section (issue 12): a noise-aware tiny run, evaluated by quest-eval."""
from __future__ import annotations

from pathlib import Path

from conftest import TINY, run_train
from quest.evaluate.cli import main as quest_eval
from quest.report.build import write_report
from quest.report.jobs import find_jobs
from quest.report.nonideal import training_label


def test_report_has_the_accuracy_vs_nonideality_figure_and_table(tmp_path):
    root = tmp_path / "sweep"
    run = root / "aware"
    proc = run_train([*TINY, "pattern=6", f"hydra.run.dir={run}", "callbacks.hardware_aware.enabled=true",
                      "device.nonideal.programming_noise.sigma=0.1"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert quest_eval([str(run), "--chips", "2", "--sweep", "programming_noise.sigma=0,0.3"]) == 0
    assert quest_eval([str(run), "--chips", "2", "--set", "read_noise.sigma=0.1", "--out", str(run / "eval_read")]) == 0
    report = write_report(root).read_text()
    section = report[report.index("## Accuracy on imperfect devices"):]
    assert "![test accuracy vs programming_noise.sigma](report_figs/nonideal_0.png)" in section
    assert (root / "report_figs" / "nonideal_0.png").stat().st_size > 0
    rows = [line for line in section.splitlines() if line.startswith("| J1 ")]
    assert len(rows) == 3  # two swept points and the fixed read-noise setting
    assert all("noise-aware (programming_noise.sigma=0.1)" in r for r in rows)
    assert sum("| programming_noise.sigma=0.3 |" in r for r in rows) == 1
    assert sum("| aware/eval_read | read_noise.sigma=0.1 | - |" in r for r in rows) == 1
    (job,) = find_jobs(root)
    job.energy = None
    assert training_label(job) == "plain"


def test_report_without_evaluations_has_no_such_section(tmp_path):
    run = tmp_path / "run"
    proc = run_train([*TINY, f"hydra.run.dir={run}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Accuracy on imperfect devices" not in write_report(run).read_text()
