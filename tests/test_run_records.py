"""The run and sweep records: results.json / energy.json file modes, the sweep's exit code."""
from __future__ import annotations

import json
import os
import stat

import pytest
from omegaconf import OmegaConf

from quest.results import write_json_atomic
from quest.sweep_summary import SweepSummary


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_json_records_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "results.json", {"status": "running"})
        write_json_atomic(tmp_path / "energy.json", {"write": None})
    finally:
        os.umask(old)
    for name in ("results.json", "energy.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _sweep(tmp_path, statuses):
    for i, status in enumerate(statuses):
        write_json_atomic(tmp_path / f"job{i}" / "results.json", {"status": status, "error": None})
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})


def test_sweep_with_incomplete_jobs_exits_1_after_its_summary(tmp_path, caplog):
    config = _sweep(tmp_path, ["completed", "failed", "interrupted"])
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary(report=False).on_multirun_end(config)
    assert exit_info.value.code == 1
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 1, "failed": 1, "interrupted": 1}
    assert "2 of 3 jobs of this run did not complete" in caplog.text


def test_sweep_of_completed_jobs_returns(tmp_path):
    SweepSummary(report=False).on_multirun_end(_sweep(tmp_path, ["completed", "completed"]))
    assert json.loads((tmp_path / "sweep_summary.json").read_text())["counts"] == {"completed": 2}


def test_an_earlier_runs_incomplete_job_lists_but_does_not_fail_this_multirun(tmp_path, caplog):
    """A sweep run in steps into one folder (reproduction/run.sh): a job another step left interrupted
    is in the summary, but the exit code is this multirun's jobs' alone; its own failure still exits 1."""
    config = _sweep(tmp_path, ["interrupted"])
    os.utime(tmp_path / "job0" / "results.json", (1e9, 1e9))  # written by an earlier multirun
    summary = SweepSummary(report=False)
    summary.on_multirun_start(config)
    write_json_atomic(tmp_path / "job1" / "results.json", {"status": "completed", "error": None})
    summary.on_multirun_end(config)  # returns: no SystemExit
    assert json.loads((tmp_path / "sweep_summary.json").read_text())["counts"] == {"completed": 1, "interrupted": 1}
    assert "job0 interrupted" in caplog.text
    os.utime(tmp_path / "job1" / "results.json", (1e9, 1e9))
    summary.on_multirun_start(config)  # the next multirun into the folder
    write_json_atomic(tmp_path / "job2" / "results.json", {"status": "failed", "error": "boom"})
    with pytest.raises(SystemExit):
        summary.on_multirun_end(config)
    assert "1 of 1 jobs of this run did not complete" in caplog.text
