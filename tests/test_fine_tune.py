"""init_from: a new run that starts from a trained checkpoint's weights (fine-tuning, e.g. hardware-aware
fine-tuning of a net trained on the ideal device), with a fresh optimizer, schedule and epoch count."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, read_results, run_train
from quest.config_checks import ConfigError, validate_config


@pytest.mark.parametrize("extra, message", [
    (["ckpt_path={ckpt}"], "init_from={ckpt}: not with ckpt_path (resume a run, or start a new one from weights)"),
    (["module.start_spike_rate=0.1"], "init_from={ckpt}: not with module.start_spike_rate (it calibrates an untrained start)"),
])
def test_init_from_refuses_what_contradicts_it(compose_cfg, tmp_path, extra, message):
    ckpt = tmp_path / "w.ckpt"
    ckpt.write_bytes(b"x")
    cfg = compose_cfg([*TINY, f"init_from={ckpt}", *(e.format(ckpt=ckpt) for e in extra)])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value) == message.format(ckpt=ckpt)


def test_init_from_a_missing_file_is_one_line(compose_cfg, tmp_path):
    cfg = compose_cfg([*TINY, f"init_from={tmp_path / 'none.ckpt'}"])
    with pytest.raises(ConfigError, match=r"^init_from=.*none.ckpt: no such checkpoint file$"):
        validate_config(cfg)


@pytest.mark.slow
def test_a_run_started_from_weights_begins_where_the_checkpoint_ended(tmp_path):
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    assert run_train([*TINY, f"hydra.run.dir={first}"]).returncode == 0
    ckpt = first / "checkpoints" / "last.ckpt"
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    proc = run_train([*TINY, f"init_from={ckpt}", f"hydra.run.dir={second}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = read_results(second)
    assert res["status"] == "completed" and res["epochs"] == 1  # a fresh epoch count, not 1 + 1
    assert res["global_steps"] == read_results(first)["global_steps"]
    # the layers' scales at the first step of the new run are the trained ones (layer_health's init entry)
    init = json.loads((second / "layer_health.json").read_text())["history"][0]
    assert init["stage"] == "init"
    alphas = {k: float(v) for k, v in trained.items() if k.endswith("quantizer.alpha")}
    assert len(alphas) == sum(1 for v in init["layers"].values() if v["quantized"]) > 0
    measured = sorted(v["alpha"] for v in init["layers"].values() if v["quantized"])
    assert measured == pytest.approx(sorted(alphas.values()), rel=1e-6)

    wrong = run_train([*TINY, "precision='3'", f"init_from={ckpt}", f"hydra.run.dir={other}"])
    lines = [l for l in (wrong.stdout + wrong.stderr).splitlines() if "config error" in l]
    assert wrong.returncode == 2 and len(lines) == 1, wrong.stderr[-3000:]
    assert lines[0].startswith(f"config error: init_from={ckpt}: trained as another network: ")
    assert "precision.bits=2 in the checkpoint, 3 in this run" in lines[0]
    assert lines[0].endswith("; start with the checkpoint's settings")
