"""The settings that change no training, defined once: sweep reuse (quest.pipeline), the report's
grouping of jobs into trained networks (quest.report.jobs) and job folder names
(conf/hydra/default.yaml, through the `quest_job_name_excluded_keys` resolver) all read them here.

Keys are dotted config paths; a key matches an entry equal to it or below it ("pattern" covers
"pattern.selection"), and "*" matches any one key ("callbacks.*.dirpath").
"""
from __future__ import annotations

from typing import Iterable

# Which R-S mapping pattern is the headline: every run reports all patterns of its device.
REPORT_ONLY = ("pattern",)
# Where and how results are written or shown, and what a sweep returns.
OUTPUT_ONLY = (
    "logger", "paths", "hydra", "skip_completed", "objectives",
    "trainer.enable_progress_bar", "callbacks.rich_progress_bar",
)
NOT_TRAINING = REPORT_ONLY + OUTPUT_ONLY
# Resolved config entries that only echo the above (the run folder; configs written before issue 10
# also echoed the pattern into the monitors).
ECHOES = ("task_name", "trainer.default_root_dir", "callbacks.*.dirpath", "callbacks.*.pattern")
# Job folder names leave out the output-only settings (not the pattern: its jobs need their own
# folders), and what only says which sweep or checkpoint a job came from.
JOB_NAME_ONLY = ("sweep", "ckpt_path", "hydra.sweep.dir")


def matches(key: str, entries: Iterable[str]) -> bool:
    """Is the dotted `key` (a leading +/~ ignored) one of `entries`, or below one?"""
    parts = key.lstrip("+~").split(".")
    for entry in entries:
        want = entry.split(".")
        if len(parts) >= len(want) and all(w in ("*", p) for w, p in zip(want, parts)):
            return True
    return False


def changes_training(key: str) -> bool:
    """Can setting `key` (a config path or an override's key) change what is trained?"""
    return not matches(key, NOT_TRAINING + ECHOES)


def job_name_excluded_keys() -> list[str]:
    """Override keys left out of job folder names (Hydra's override_dirname.exclude_keys: exact keys)."""
    return [*OUTPUT_ONLY, *JOB_NAME_ONLY]
