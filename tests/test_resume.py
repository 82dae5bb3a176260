"""Runs that can always resume: last.ckpt after every epoch (and every n steps), kill -9 then resume
repeats and skips nothing, SIGTERM/SIGINT end "interrupted", a failed checkpoint write records itself."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, read_results, run_train, subprocess_env
from quest.data.loader import TensorBatchLoader

# 100 training images in batches of 20: 5 optimizer steps per epoch
FIVE_STEPS = [*TINY, "data.batch_size=20", "trainer.max_epochs=2"]


def trace_args(trace: Path, at_step: int | None = None, sig: str = "SIGKILL") -> list[str]:
    args = ["+callbacks.trace._target_=helpers.callbacks.TraceAndSignal", f"+callbacks.trace.trace={trace}"]
    if at_step is not None:
        args += [f"+callbacks.trace.at_step={at_step}", f"+callbacks.trace.signal={sig}"]
    return args


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def schedule_state(ckpt: dict) -> tuple:
    """The learning rate and the scheduler's epoch count: what a resume must carry on with."""
    return ckpt["optimizer_states"][0]["param_groups"][0]["lr"], ckpt["lr_schedulers"][0]["last_epoch"]


# -- the loader's state --------------------------------------------------------------------------
def test_loader_resumes_the_same_permutation_mid_epoch_and_the_next_after_an_epoch():
    x, y = torch.arange(40).view(40, 1), torch.arange(40)
    ref = TensorBatchLoader(x, y, 8, shuffle=True, drop_last=True, seed=3)
    epochs = [[b[1].tolist() for b in ref] for _ in range(3)]
    run = TensorBatchLoader(x, y, 8, shuffle=True, drop_last=True, seed=3)
    it = iter(run)
    seen = [next(it)[1].tolist(), next(it)[1].tolist()]
    state = run.state_dict()
    assert state == {"epoch": 0, "batch": 2}
    resumed = TensorBatchLoader(x, y, 8, shuffle=True, drop_last=True, seed=3)
    resumed.load_state_dict(state)
    assert seen + [b[1].tolist() for b in resumed] == epochs[0]
    assert resumed.state_dict() == {"epoch": 1, "batch": 0}
    after_epoch = TensorBatchLoader(x, y, 8, shuffle=True, drop_last=True, seed=3)
    after_epoch.load_state_dict(resumed.state_dict())
    assert [b[1].tolist() for b in after_epoch] == epochs[1]
    # an epoch cut short by the trainer (limit_train_batches) counts as complete
    limited = TensorBatchLoader(x, y, 8, shuffle=True, drop_last=True, seed=3, batches_per_epoch=lambda: 2)
    it = iter(limited)
    next(it), next(it)
    assert limited.state_dict() == {"epoch": 1, "batch": 0}


# -- last.ckpt -----------------------------------------------------------------------------------
def test_last_ckpt_is_the_last_epoch_even_when_val_acc_does_not_improve(tmp_path):
    """A frozen net (lr 1e-12): val/acc never improves after epoch 0, last.ckpt must still be epoch 2."""
    proc = run_train([*TINY, "trainer.max_epochs=3", "module.lr=1e-12", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = read_results(tmp_path)
    last = load_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2 and last["global_step"] == res["global_steps"] == 6
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at,every_n_steps",
    [(5, "null"), (8, "2")],  # at the epoch boundary; mid-epoch 1 after the step-8 checkpoint
    ids=["epoch-boundary", "mid-epoch"],
)
def test_resume_after_kill_9_repeats_and_skips_nothing(tmp_path, kill_at, every_n_steps):
    """kill -9, then resume into the same folder from last.ckpt: the batches trained (epoch, index,
    step and the labels, i.e. the data order) are those of an uninterrupted run, each once, and the
    learning-rate schedule ends where the uninterrupted run's does."""
    args = [*FIVE_STEPS, f"callbacks.last_checkpoint.every_n_steps={every_n_steps}"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = run_train([*args, *trace_args(tmp_path / "ref.trace"), f"hydra.run.dir={ref_dir}"])
    assert ref.returncode == 0, ref.stderr[-3000:]

    killed = run_train([*args, *trace_args(tmp_path / "run.trace", kill_at), f"hydra.run.dir={run_dir}"])
    assert killed.returncode == -9
    last = run_dir / "checkpoints" / "last.ckpt"
    assert load_ckpt(last)["global_step"] == kill_at
    resumed = run_train([*args, *trace_args(tmp_path / "run.trace"), f"ckpt_path={last}", f"hydra.run.dir={run_dir}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert (tmp_path / "run.trace").read_text() == (tmp_path / "ref.trace").read_text()
    res, ref_res = read_results(run_dir), read_results(ref_dir)
    assert res["status"] == "completed" and (res["epochs"], res["global_steps"]) == (ref_res["epochs"], ref_res["global_steps"]) == (2, 10)
    assert schedule_state(load_ckpt(last)) == schedule_state(load_ckpt(ref_dir / "checkpoints" / "last.ckpt"))


# -- stop signals --------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_stop_signal_ends_interrupted_with_a_checkpoint_and_nonzero_exit(tmp_path, sig, code):
    proc = run_train([*FIVE_STEPS, *trace_args(tmp_path / "trace", 3, sig), f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == code, proc.stderr[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "interrupted" and res["signal"] == sig
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert res["resume_checkpoint"] == str(last)
    ckpt = load_ckpt(last)
    # stopped at the next step boundary: step 4 trained, and the resume continues with batch 4
    assert ckpt["global_step"] == 4
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 0, "batch": 4}]
    assert len((tmp_path / "trace").read_text().splitlines()) == 4
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if f"interrupted by {sig}" in l]
    assert len(lines) == 1 and f"resume with ckpt_path={last}" in lines[0]


# -- a checkpoint that cannot be written -----------------------------------------------------------
def test_checkpoint_write_failure_is_recorded_and_leaves_no_truncated_checkpoint(tmp_path):
    """Files limited to 1 MB (RLIMIT_FSIZE, as a full disk: writes fail with an OSError); the
    2.4 MB checkpoint cannot be written, the small records can."""
    limit = 1_000_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=900, preexec_fn=small_files,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "failed" and res["error_kind"] == "checkpoint write error"
    assert "could not write checkpoint" in res["error"] and "File too large" in res["error"]
    assert (tmp_path / "error.log").stat().st_size > 0
    for path in (tmp_path / "checkpoints").glob("*"):  # nothing, or whole checkpoints only
        assert not path.name.startswith("."), path
        load_ckpt(path)


# -- a sweep through Hydra's submitit_local launcher (the SLURM code path without SLURM) -------------
@pytest.mark.slow
def test_submitit_sweep_with_a_sigterm_job_reports_it_and_the_rerun_resumes_it(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", *TINY, "data.batch_size=20",
            "+callbacks.trace._target_=helpers.callbacks.TraceAndSignal", "+callbacks.trace.signal=SIGTERM",
            "+callbacks.trace.at_step=null,3", f"hydra.sweep.dir={sweep}"]
    first = run_train(args)
    assert first.returncode == 1, first.stderr[-3000:]  # one job did not complete
    jobs = {read_results(p.parent)["config"]["callbacks"]["trace"]["at_step"]: p.parent for p in sweep.glob("*/results.json")}
    assert read_results(jobs[None])["status"] == "completed"
    stopped = read_results(jobs[3])
    assert stopped["status"] == "interrupted" and stopped["signal"] == "SIGTERM" and stopped["global_steps"] == 4
    assert stopped["resume_checkpoint"] == str(jobs[3] / "checkpoints" / "last.ckpt")

    again = run_train(args)  # what a requeued SLURM sweep does: the same command
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = read_results(jobs[3])
    assert resumed["status"] == "completed" and resumed["resumed_from"] == stopped["resume_checkpoint"]
    assert resumed["global_steps"] == 5 and resumed["epochs"] == 1
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 2}


# -- a sweep job that was killed ------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_sweep_job_reads_killed_and_rerunning_the_sweep_resumes_it(tmp_path):
    """kill -9 leaves results.json saying "running"; with its process gone the job reads "killed"
    (sweep summary and report), and running the same sweep again resumes it from last.ckpt: each
    step is trained once."""
    from quest.report.jobs import load_job
    from quest.results import KILLED_NOTE, observed_status
    from quest.sweep_summary import collect_jobs, job_reason

    sweep = tmp_path / "sweep"
    args = ["-m", *FIVE_STEPS, "callbacks.last_checkpoint.every_n_steps=2", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=job"]
    killed = run_train([*args, *trace_args(tmp_path / "trace", 8)])
    assert killed.returncode == -9
    job = sweep / "job"
    recorded = read_results(job)
    assert recorded["status"] == "running"
    assert observed_status(job, recorded) == "killed"
    assert load_job(job, sweep).status == "killed" and load_job(job, sweep).error == KILLED_NOTE
    assert [(row["status"], job_reason(row)) for row in collect_jobs(sweep)] == [("killed", KILLED_NOTE)]

    again = run_train([*args, *trace_args(tmp_path / "trace")])
    assert again.returncode == 0, again.stderr[-3000:]
    res = read_results(job)
    assert res["status"] == "completed" and res["global_steps"] == 10
    assert res["resumed_from"] == str(job / "checkpoints" / "last.ckpt")
    steps = [int(line.split()[2]) for line in (tmp_path / "trace").read_text().splitlines()]
    assert steps == list(range(1, 11))


@pytest.mark.slow
def test_a_stopped_sweep_moved_to_another_folder_resumes_from_its_own_last_ckpt(tmp_path):
    """A sweep folder carried elsewhere (another disk; committed and checked out in a later session)
    resumes its interrupted job from the last.ckpt beside it, not from the path the record names
    (gone with the old place), and trains each step once."""
    import shutil

    old, new = tmp_path / "old", tmp_path / "new"
    common = ["-m", *FIVE_STEPS, "callbacks.last_checkpoint.every_n_steps=2", "hydra.sweep.subdir=job"]
    stopped = run_train([*common, f"hydra.sweep.dir={old}", *trace_args(tmp_path / "trace", 8, "SIGTERM")])
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]  # stopped by SIGTERM, as the shell says
    record = read_results(old / "job")
    assert record["status"] == "interrupted" and record["resume_checkpoint"] == str(old / "job" / "checkpoints" / "last.ckpt")
    shutil.move(old, new)

    again = run_train([*common, f"hydra.sweep.dir={new}", *trace_args(tmp_path / "trace")])
    assert again.returncode == 0, again.stderr[-3000:]
    res = read_results(new / "job")
    assert res["status"] == "completed" and res["global_steps"] == 10
    assert res["resumed_from"] == str(new / "job" / "checkpoints" / "last.ckpt")
    steps = [int(line.split()[2]) for line in (tmp_path / "trace").read_text().splitlines()]
    assert steps == list(range(1, 11))


def test_a_running_record_reads_running_while_its_process_holds_the_folder(tmp_path):
    """The liveness rule by itself: "killed" only for this machine's records whose lock is free."""
    import socket

    from quest.results import observed_status
    from quest.run_folder import lock_job_folder, release_folder

    record = {"status": "running", "host": socket.gethostname()}
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from quest.run_folder import lock_folder; "
        f"lock_folder(Path({str(tmp_path)!r})); print('locked', flush=True); time.sleep(60)")],
        cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert observed_status(tmp_path, record) == "running"
    finally:
        holder.kill()
        holder.wait()
    assert observed_status(tmp_path, record) == "killed"
    assert observed_status(tmp_path, {**record, "host": "another-machine"}) == "running"
    assert observed_status(tmp_path, {"status": "running"}) == "killed"  # a record from before hosts were named
    assert observed_status(tmp_path, {**record, "status": "completed"}) == "completed"
    assert lock_job_folder(tmp_path) is None  # this process now holds it: running again
    assert observed_status(tmp_path, record) == "running"
    release_folder(tmp_path)
    assert observed_status(tmp_path, record) == "killed"
