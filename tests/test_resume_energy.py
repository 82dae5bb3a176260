"""Issue 14 item 3: the monitors' history lives in the checkpoint, so a run resumed from a checkpoint
writes the energy.json of an uninterrupted run (the real train.py, tiny config)."""
from __future__ import annotations

import json

from conftest import TINY, read_results, run_train
from helpers.records import assert_same_record


def test_resumed_run_writes_the_energy_record_of_an_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    every_epoch = ["callbacks.model_checkpoint.save_top_k=-1", "trainer.max_epochs=2"]
    whole = run_train([*TINY, *every_epoch, f"hydra.run.dir={run}"])
    assert whole.returncode == 0, whole.stderr[-3000:]
    uninterrupted = json.loads((run / "energy.json").read_text())
    assert [e["epoch"] for e in uninterrupted["write"]["epochs"]] == [0, 1]
    # resume from the checkpoint of the first epoch into the same folder
    ckpt = run / "checkpoints" / "best-epoch000.ckpt"
    resumed = run_train([*TINY, *every_epoch, f"ckpt_path={ckpt}", f"hydra.run.dir={run}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_results(run)["epochs"] == 2
    assert_same_record(uninterrupted, json.loads((run / "energy.json").read_text()))
