"""Claiming a run (or sweep) folder before anything is written into it (a Hydra callback).

- The default folder (logs/runs/<time>, logs/multirun/<time>) is claimed with an atomic mkdir: a
  second run started in the same second gets <time>_2 (then _3, ...), never the first run's folder.
- Every claimed folder is locked (flock on `<folder>/.quest.lock`, released by the kernel when the
  process ends, also on kill -9). A second run or sweep given the same explicit folder while the
  first still runs stops at once with one line; a later run into a finished folder (a resume) may.
- A single run that stops at a config error removes the folder it created (`discard_if_fresh`):
  no folder is left for a run that never started.
- A sweep job locks its own folder while it trains (`lock_job_folder`), so a folder whose
  results.json says "running" while no process holds its lock was killed (`held`).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

LOCK_NAME = ".quest.lock"
_held: dict[Path, IO[str]] = {}  # open lock files of this process, by folder
_fresh: set[Path] = set()  # folders this process created


def _is_secondary_process() -> bool:
    """A DDP worker that Lightning or SLURM started for a run whose folder rank 0 holds."""
    return any(os.environ.get(k, "0") != "0" for k in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def lock_folder(folder: Path) -> int | None:
    """Lock `folder` for this process; None on success, else the pid recorded by the holder."""
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / LOCK_NAME, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        return int(holder) if holder.isdigit() else -1
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _held[folder.resolve()] = f
    return None


def lock_job_folder(folder: Path) -> int | None:
    """Lock a sweep job's folder for this process (a no-op when it already holds it, or on a DDP
    worker); None on success, else the pid of the process that holds it."""
    if folder.resolve() in _held or _is_secondary_process():
        return None
    return lock_folder(folder)


def release_folder(folder: Path) -> None:
    """Give up this process's lock on `folder` (the next job of a sweep may take it)."""
    f = _held.pop(folder.resolve(), None)
    if f is not None:
        f.close()


def held(folder: Path) -> bool:
    """True when a live process on this machine holds `folder`'s lock (this process included).

    Probes with a shared, non-blocking flock that is given back at once; the kernel drops a lock
    when its process ends (kill -9 included), so a free lock means no process is in the folder.
    """
    if folder.resolve() in _held:
        return True
    try:
        f = open(folder / LOCK_NAME)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: do not call a run dead
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def claim_new_folder(folder: Path) -> Path:
    """Create `folder`, or `<folder>_2`, `<folder>_3`, ... : the first name no one has (atomic mkdir)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = folder, 1
    while True:
        try:
            candidate.mkdir()
        except FileExistsError:
            n += 1
            candidate = folder.with_name(f"{folder.name}_{n}")
            continue
        _fresh.add(candidate.resolve())
        return candidate


def claim(config: DictConfig, key: str) -> Path:
    """Claim the folder at `hydra.<key>` (one line and exit 2 when it cannot be created or is in use)."""
    node = config.hydra.run if key == "run.dir" else config.hydra.sweep
    folder = Path(str(node.dir))
    try:
        return _claim(config, key, node, folder)
    except OSError as e:
        print(f"config error: hydra.{key}={folder}: cannot create the folder ({e.strerror or e}); "
              "choose a writable place", file=sys.stderr)
        raise SystemExit(2) from None


def _claim(config: DictConfig, key: str, node: DictConfig, folder: Path) -> Path:
    """A default folder may be renamed (<time>_2), an explicit one must be free."""
    explicit = any(o.split("=", 1)[0] == f"hydra.{key}" for o in config.hydra.overrides.hydra)
    if not explicit:
        claimed = claim_new_folder(folder)
        if claimed != folder:
            with read_write(config.hydra), open_dict(config.hydra):
                node.dir = str(claimed)
                # sweep jobs re-compose their config from these overrides
                config.hydra.overrides.hydra.append(f"hydra.{key}={claimed}")
        folder = claimed
    elif not folder.exists():
        folder.mkdir(parents=True)
        _fresh.add(folder.resolve())
    holder = lock_folder(folder)
    if holder is not None:
        print(f"config error: hydra.{key}={folder}: in use by another run (pid {holder}); "
              "wait for it or choose another folder", file=sys.stderr)
        raise SystemExit(2)
    return folder


def discard_if_fresh(folder: Path) -> bool:
    """Remove `folder` if this process created it (a run that never started); True if removed."""
    folder = folder.resolve()
    if folder not in _fresh:
        return False
    f = _held.pop(folder, None)
    if f is not None:
        f.close()
    shutil.rmtree(folder, ignore_errors=True)
    _fresh.discard(folder)
    return True


class RunFolderClaim(Callback):
    """Hydra callback: claim hydra.run.dir before a run, hydra.sweep.dir before a sweep."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_secondary_process():
            claim(config, "run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_secondary_process():
            claim(config, "sweep.dir")
