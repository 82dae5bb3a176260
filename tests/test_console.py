"""What a newcomer sees: progress lines off a terminal and no third-party noise (issue 16, items 1-2)."""
from __future__ import annotations

import re
import sys

from lightning.pytorch.callbacks import RichProgressBar

from conftest import CONF, ROOT, TINY, read_results, run_train
from quest.progress import LogProgress, progress_bar

PROGRESS = re.compile(r"epoch 1/1 step (\d+)/(\d+) loss \d+\.\d{4} \| \d+\.\d images/s \| ETA \d+:\d\d:\d\d")


def test_progress_bar_is_rich_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert isinstance(progress_bar(), RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    bar = progress_bar(every_s=5)
    assert isinstance(bar, LogProgress) and bar.every_s == 5.0


def test_piped_run_prints_progress_lines_and_no_noise(tmp_path):
    """stdout is a pipe here (as under nohup, Docker logs, SLURM, CI); W&B runs offline."""
    args = [a for a in TINY if not a.startswith(("logger=", "~callbacks.rich_progress_bar", "trainer.enable_progress_bar"))]
    proc = run_train([*args, "callbacks.rich_progress_bar.every_s=0", f"hydra.run.dir={tmp_path}"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert read_results(tmp_path)["status"] == "completed"
    for text in (proc.stdout, (tmp_path / "train.log").read_text()):
        steps = [m.groups() for m in PROGRESS.finditer(text)]
        assert steps and steps[-1][0] == steps[-1][1], text[-2000:]  # every step, the last one included
        assert re.search(r"epoch 1/1 val/acc \d\.\d{4} val/loss", text)
    wandb_lines = [line for line in out.splitlines() if "wandb" in line.lower() or "W&B" in line]
    assert len(wandb_lines) == 1 and "logging offline (sync later: wandb sync" in wandb_lines[0], wandb_lines
    for noise in ("litlogger", "LeafSpec", "FLOPs", "Flops", "anonymous setting", "Skipping setting a default"):
        assert noise not in out, noise


def test_help_lists_every_group_option_and_the_main_commands():
    proc = run_train(["--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) < 40
    groups = {d.name: d for d in CONF.iterdir() if d.is_dir() and d.name != "hydra"}
    groups["sweep"] = ROOT / "sweeps" / "sweep"
    for group, folder in groups.items():
        line = next((l for l in lines if l.split()[:1] == [group]), None)
        assert line is not None, group
        for option in folder.glob("*.yaml"):
            assert re.search(rf"[ ,]{re.escape(option.stem)}[ ,]", line), (group, option.stem, line)
    assert "(default: sk_mtj_3state)" in proc.stdout and "+sweep=<option>" in proc.stdout
    for command in ("python train.py experiment=quickstart", "python train.py -m precision=2,3,4", "quest-report"):
        assert command in proc.stdout
