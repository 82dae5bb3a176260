"""Run and sweep folders are claimed atomically: never shared by two runs, and none is left behind
by a run that never started."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import open_dict, read_write

from conftest import ROOT, TINY, read_results, run_train, subprocess_env
from quest.run_folder import LOCK_NAME, RunFolderClaim, lock_folder


def _with_dir(cfg, key: str, folder: Path, explicit: bool):
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        getattr(cfg.hydra, key).dir = str(folder)
        if explicit:
            cfg.hydra.overrides.hydra.append(f"hydra.{key}.dir={folder}")
    return cfg


def test_two_runs_in_the_same_second_get_two_default_folders(compose_cfg, tmp_path):
    stamp = tmp_path / "runs" / "2026-01-01_00-00-00"  # what ${now:...} gave both
    first = _with_dir(compose_cfg(), "run", stamp, explicit=False)
    second = _with_dir(compose_cfg(), "run", stamp, explicit=False)
    RunFolderClaim().on_run_start(config=first)
    RunFolderClaim().on_run_start(config=second)
    assert first.hydra.run.dir == str(stamp)
    assert second.hydra.run.dir == str(stamp.with_name(stamp.name + "_2"))


def test_two_sweeps_in_the_same_second_get_two_default_folders(compose_cfg, tmp_path):
    stamp = tmp_path / "multirun" / "2026-01-01_00-00-00"
    first = _with_dir(compose_cfg(), "sweep", stamp, explicit=False)
    second = _with_dir(compose_cfg(), "sweep", stamp, explicit=False)
    RunFolderClaim().on_multirun_start(config=first)
    RunFolderClaim().on_multirun_start(config=second)
    claimed = stamp.with_name(stamp.name + "_2")
    assert second.hydra.sweep.dir == str(claimed)
    # the jobs re-compose their config from the hydra overrides: they must see the claimed folder
    assert f"hydra.sweep.dir={claimed}" in second.hydra.overrides.hydra


def test_a_sweep_folder_in_use_stops_the_second_sweep_at_once(compose_cfg, tmp_path, capsys):
    assert lock_folder(tmp_path / "shared") is None  # a running sweep holds it
    cfg = _with_dir(compose_cfg(), "sweep", tmp_path / "shared", explicit=True)
    with pytest.raises(SystemExit) as exit_info:
        RunFolderClaim().on_multirun_start(config=cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"config error: hydra.sweep.dir={tmp_path / 'shared'}: in use by another run")


def test_an_explicit_run_folder_in_use_stops_the_second_run_at_once(tmp_path):
    folder, release = tmp_path / "run", tmp_path / "release"
    hold = ["+callbacks.hold._target_=helpers.callbacks.HoldUntilFile", f"+callbacks.hold.release={release}"]
    first = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, *hold, f"hydra.run.dir={folder}"],
                             cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = folder / LOCK_NAME
    deadline = time.time() + 300
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    # the first run holds at its start until `release` exists: it is alive while the second starts
    try:
        second = run_train([*TINY, f"hydra.run.dir={folder}"])
        assert first.poll() is None, "the first run ended before the second started; the test proves nothing"
    finally:
        release.touch()
    assert second.returncode == 2
    lines = [l for l in (second.stdout + second.stderr).splitlines() if l.strip()]
    assert lines == [f"config error: hydra.run.dir={folder}: in use by another run (pid {first.pid}); "
                     "wait for it or choose another folder"]
    assert first.wait(timeout=900) == 0, first.stderr.read()[-3000:]
    assert read_results(folder)["status"] == "completed"


@pytest.mark.parametrize("where", ["explicit", "default"])
def test_a_run_that_never_started_leaves_no_folder(tmp_path, where):
    folder_arg = f"hydra.run.dir={tmp_path / 'new'}" if where == "explicit" else f"paths.log_dir={tmp_path / 'logs'}"
    proc = run_train([*TINY, "trainer.max_epochs=0", folder_arg])
    assert proc.returncode == 2
    out = (proc.stdout + proc.stderr).splitlines()
    assert out == ["config error: trainer.max_epochs=0: must be an integer >= 1"], out
    assert not (tmp_path / "new").exists()
    if where == "default":
        assert not list((tmp_path / "logs" / "runs").glob("*"))


def test_a_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_train([*TINY, f"hydra.run.dir={blocker / 'run'}"])
    assert proc.returncode == 2
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    assert lines == [f"config error: hydra.run.dir={blocker / 'run'}: cannot create the folder (Not a directory); "
                     "choose a writable place"], lines
