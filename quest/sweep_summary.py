"""A Hydra callback that closes a multirun with a summary of its jobs.

Writes <sweep dir>/sweep_summary.json and logs one line per job that did not complete, with
its reason, so that one failed job is visible without stopping the others. When any job of this
multirun did not complete, the sweep exits 1 after its summary and report (what schedulers and CI
expect); a job of an earlier run into the same folder (its results.json older than this multirun)
is listed but does not decide the exit code, so that a sweep run in steps into one folder
(reproduction/run.sh) can go on to the step that resumes it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from quest.results import KILLED_NOTE, RESULTS_FILE, observed_status, read_json, write_json_atomic

log = logging.getLogger("quest.sweep")


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder below `sweep_dir` that holds a results.json."""
    rows = []
    for path in sorted(sweep_dir.glob(f"**/{RESULTS_FILE}")):
        res = read_json(path) or {"status": "unreadable"}
        rows.append({
            "job": str(path.parent.relative_to(sweep_dir)),
            "status": observed_status(path.parent, res),
            "error": res.get("error"),
            "test_acc": res.get("test_acc"),
            "reused_from": res.get("reused_from"),
            "signal": res.get("signal"),
            "overrides": res.get("overrides", []),
        })
    return rows


class SweepSummary(Callback):
    """on_multirun_end: summarise every job's status; optionally write the report."""

    def __init__(self, report: bool = True) -> None:
        self.report = report
        self.started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect_jobs(sweep_dir)
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        write_json_atomic(sweep_dir / "sweep_summary.json", {"counts": counts, "jobs": jobs})
        log.info("sweep %s: %s", sweep_dir, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        for job in jobs:
            if job["status"] != "completed":
                log.warning("job %s %s: %s", job["job"], job["status"], job["error"] or job_reason(job))
        if self.report:
            try:
                from quest.report import write_report

                write_report(sweep_dir)
                log.info("report: %s", sweep_dir / "report.md")
            except Exception as e:  # noqa: BLE001 - a report problem must not hide the sweep's results
                log.warning("could not write the report: %s", e)
        exit_if_incomplete(jobs, sweep_dir, self.started)


def job_reason(job: dict[str, Any]) -> str:
    if job["status"] == "interrupted":
        return f"stopped by {job.get('signal') or 'a signal'}"
    if job["status"] == "running":
        return "no end recorded yet (still running)"
    if job["status"] == "killed":
        return KILLED_NOTE
    return "no reason recorded"


def exit_if_incomplete(jobs: list[dict[str, Any]], sweep_dir: Path, since: float | None = None) -> None:
    """Exit 1 with one line when any job of this multirun (record written at or after `since`; every
    job when None) did not complete."""
    def written_since(job: dict[str, Any]) -> bool:  # 1 s of slack for the file system's clock
        return since is None or (sweep_dir / job["job"] / RESULTS_FILE).stat().st_mtime >= since - 1.0

    mine = [job for job in jobs if written_since(job)]
    incomplete = [job for job in mine if job["status"] != "completed"]
    if incomplete:
        log.error("sweep %s: %d of %d jobs of this run did not complete (see sweep_summary.json); exit code 1",
                  sweep_dir, len(incomplete), len(mine))
        raise SystemExit(1)
