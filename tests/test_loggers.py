"""The CSV logger of logger=csv: Lightning's, keeping metrics.csv whole across processes."""
from __future__ import annotations

import copy
import csv

from quest.loggers import CSVLogger


def test_csv_logger_copy_made_before_training_keeps_training_rows(tmp_path):
    """ddp_spawn's test processes log through a copy of the writer made before training (no columns
    known yet); their rows join the file instead of replacing its header and failing."""
    logger = CSVLogger(save_dir=tmp_path, name="csv")
    logger.log_hyperparams({"seed": 0})  # the writer exists before training, as in quest.pipeline
    copy_for_test_phase = copy.deepcopy(logger)
    for epoch in range(2):
        logger.log_metrics({"val/acc": 0.1 * (epoch + 1), "epoch": epoch}, step=epoch)
    logger.save()
    copy_for_test_phase.log_metrics({"test/acc": 0.3}, step=2)
    copy_for_test_phase.save()
    with open(tmp_path / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["val/acc"] for r in rows] == ["0.1", "0.2", ""]
    assert [r["test/acc"] for r in rows] == ["", "", "0.3"]
