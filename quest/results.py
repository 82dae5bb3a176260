"""The run folder's machine-readable record: results.json (and energy.json beside it).

results.json is written atomically. Its `status` is "running" while a job trains, then
"completed", "failed" (with `error`) or "interrupted" (with `signal` and `resume_checkpoint`);
only "completed" counts as a finished run. A "running" record whose process is gone (kill -9, a
machine or session that ended) reads as "killed" (`observed_status`).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
ENERGY_FILE = "energy.json"


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf become null, tensors and numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def umask_mode(mode: int = 0o666) -> int:
    """`mode` as the process's umask leaves it (what open() would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over `path`.

    The file gets the umask's mode (0644 under the usual 022), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(data), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The parsed file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_completed(run_dir: str | Path) -> bool:
    """True when the folder's results.json says the run completed."""
    data = read_json(Path(run_dir) / RESULTS_FILE)
    return bool(data) and data.get("status") == "completed"


KILLED_NOTE = "its process ended without recording an end; re-run the sweep to resume it from last.ckpt"
"""What a "killed" job means and what to do, said the same way by the report and the sweep summary."""


def observed_status(run_dir: str | Path, data: dict[str, Any]) -> str:
    """The recorded status, or "killed" for a "running" record whose process is gone: the record
    names this machine (or no machine: written before records named one) and no process holds the
    folder's lock (quest.run_folder.held)."""
    import socket

    from quest.run_folder import held

    status = str(data.get("status") or "unreadable")
    if status == "running" and data.get("host", socket.gethostname()) == socket.gethostname() and not held(Path(run_dir)):
        return "killed"
    return status


def source_commit(root: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the code (the repository holding this package, or `root`) and whether the
    work tree had uncommitted changes; {"commit": None} outside a git checkout (a wheel install)."""
    import subprocess

    where = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}
