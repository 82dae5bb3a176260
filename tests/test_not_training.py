"""One definition of the settings that change no training, read by sweep reuse, the report and job names."""
from __future__ import annotations

from quest.not_training import changes_training, job_name_excluded_keys
from quest.pipeline import training_identity
from quest.report.jobs import Job, training_key


def test_keys_that_change_no_training():
    for key in ("pattern", "pattern.selection", "+pattern.selection", "logger", "hydra.sweep.dir", "paths.log_dir",
                "skip_completed", "trainer.enable_progress_bar", "callbacks.rich_progress_bar",
                "callbacks.model_checkpoint.dirpath", "trainer.default_root_dir"):
        assert not changes_training(key), key
    for key in ("precision", "precision.bits", "neuron", "device", "trainer.max_epochs", "callbacks.model_checkpoint",
                "seed", "patterns", "loggers"):
        assert changes_training(key), key


def test_sweep_reuse_report_and_job_names_read_the_same_definition(compose_cfg, tmp_path):
    a = ["precision=3", "pattern=2", "logger=csv", "trainer.enable_progress_bar=false"]
    b = ["precision=3", "pattern=best"]
    assert training_identity(a) == training_identity(b) == ["precision=3"]
    jobs = [Job(tmp_path / n, n, {"overrides": o}, None) for n, o in (("a", a), ("b", b))]
    assert training_key(jobs[0]) == training_key(jobs[1])
    cfg = compose_cfg(["experiment=quickstart"])
    excluded = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert excluded == job_name_excluded_keys() and "logger" in excluded and "pattern" not in excluded
