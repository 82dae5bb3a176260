"""The `debug` group and the trainer's batch limits: a quick look needs no `+` (issue 16, item 3)."""
from __future__ import annotations

import pytest

from conftest import TINY, read_results, run_train


@pytest.mark.parametrize(
    "debug,expected",
    [
        ("fdr", {"fast_dev_run": True, "max_epochs": 1}),
        ("limit", {"limit_train_batches": 5, "limit_val_batches": 2, "limit_test_batches": 2, "max_epochs": 2}),
        ("overfit", {"overfit_batches": 3, "max_epochs": 20}),
    ],
)
def test_debug_options_set_the_trainer(compose_cfg, debug, expected):
    cfg = compose_cfg(["experiment=quickstart", f"debug={debug}"])
    assert {k: cfg.trainer[k] for k in expected} == expected
    assert cfg.trainer.accelerator == "cpu" and "csv" in cfg.logger and "wandb" not in cfg.logger


def test_trainer_limits_need_no_plus(compose_cfg):
    cfg = compose_cfg(["trainer.limit_train_batches=5", "trainer.limit_val_batches=0.5"])
    assert cfg.trainer.limit_train_batches == 5 and cfg.trainer.limit_val_batches == 0.5
    assert compose_cfg([]).trainer.limit_train_batches == 1.0  # default: every batch


def test_limit_train_batches_run(tmp_path):
    proc = run_train([*TINY, "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    res = read_results(tmp_path)
    assert res["status"] == "completed" and res["global_steps"] == 2
