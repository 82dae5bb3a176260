"""Inputs that used to train silently to a wrong result are answered before training, one line each."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import TINY, read_results, run_train
from quest.checkpoints import CONFIG_KEY, check_checkpoint, identity
from quest.config_checks import ConfigError, check_run_inputs
from quest.data.sources import DataSourceError
from omegaconf import OmegaConf, open_dict


def one_config_error(proc) -> str:
    out = proc.stdout + proc.stderr
    lines = [l for l in out.splitlines() if "config error" in l]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in out, out[-3000:]
    return lines[0]


def write_npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def images(n):
    return np.zeros((n, 32, 32, 3), np.uint8)


def datamodule(compose_cfg, path, *extra):
    return instantiate(compose_cfg([*TINY, "data=cifar10_npz", f"data.path={path}", "data.batch_size=10", *extra]).data)


def test_batch_larger_than_the_training_split(tmp_path):
    line = one_config_error(run_train([*TINY, "data.batch_size=200", f"hydra.run.dir={tmp_path}"]))
    assert "data.batch_size=200: larger than the 100 training images" in line


def test_empty_test_set(compose_cfg, tmp_path):
    path = write_npz(tmp_path / "d.npz", images(100), np.arange(100) % 10, images(0), np.zeros(0, np.int64))
    with pytest.raises(DataSourceError, match="the test set is empty"):
        datamodule(compose_cfg, path).load()


def test_val_size_that_leaves_nothing_names_val_size(compose_cfg, tmp_path):
    path = write_npz(tmp_path / "d.npz", images(100), np.arange(100) % 10, images(10), np.arange(10))
    with pytest.raises(DataSourceError, match=r"^data.val_size=100: holds out 100 of the 100"):
        datamodule(compose_cfg, path, "data.val_size=100").load()


def test_float_labels_are_refused_and_whole_float_labels_kept(compose_cfg, tmp_path):
    bad = write_npz(tmp_path / "bad.npz", images(100), np.arange(100) % 10 + 0.7, images(10), np.arange(10))
    with pytest.raises(DataSourceError, match=r"y_train holds non-integer labels \(float64, e.g. 0.7\)"):
        datamodule(compose_cfg, bad).load()
    whole = write_npz(tmp_path / "whole.npz", images(100), (np.arange(100) % 10).astype(float), images(10), np.arange(10))
    assert datamodule(compose_cfg, whole).load().y_train.dtype == torch.int64


def test_a_file_that_is_not_an_npz(compose_cfg, tmp_path):
    path = tmp_path / "pickled.npz"
    path.write_bytes(pickle.dumps({"x_train": 1}))
    with pytest.raises(DataSourceError, match="not an npz file") as info:
        datamodule(compose_cfg, path).load()
    assert "allow_pickle" not in str(info.value)


@pytest.mark.parametrize("std", ["[0.2,0.0,0.2]", "[0.2,-0.1,0.2]"])
def test_std_must_be_positive(compose_cfg, std):
    with pytest.raises(Exception, match=r"data.std=.*every value must be > 0"):
        instantiate(compose_cfg([*TINY, f"data.std={std}"]).data)


@pytest.mark.parametrize("width", ["0", "-0.5", "0.001"])
def test_width_mult_that_would_clamp_layers(compose_cfg, width):
    with pytest.raises(ConfigError, match=rf"^model.width_mult={width}: "):
        check_run_inputs(compose_cfg([*TINY, f"model.width_mult={width}"]))


def test_device_card_named_unlike_its_file(tmp_path):
    line = one_config_error(run_train([*TINY, "device.name=sk_mtj_7state", f"hydra.run.dir={tmp_path}"]))
    assert "device.name='sk_mtj_7state': the card chosen is device=sk_mtj_3state" in line


# -- resuming ---------------------------------------------------------------------------------------
def _fake_checkpoint(path, config):
    torch.save({"state_dict": {}, "loops": {}, CONFIG_KEY: identity(config)}, path)
    return path


def resolved(compose_cfg, overrides, tmp_path) -> dict:
    """The resolved run config, as train.py sees it (without Hydra's own node)."""
    cfg = compose_cfg(overrides)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = str(tmp_path)
    return OmegaConf.to_container(cfg, resolve=True)


def test_checkpoint_of_another_precision_or_width_is_refused(compose_cfg, tmp_path):
    ckpt = _fake_checkpoint(tmp_path / "two.ckpt", resolved(compose_cfg, TINY, tmp_path))
    three_bit = resolved(compose_cfg, [*TINY, "precision='3'"], tmp_path)
    with pytest.raises(ValueError, match=r"trained as another network: .*precision.bits=2 in the checkpoint, 3 in this run"):
        check_checkpoint(ckpt, three_bit)
    wider = resolved(compose_cfg, [*TINY, "model.width_mult=0.25"], tmp_path)
    with pytest.raises(ValueError, match=r"model.width_mult=0.125 in the checkpoint, 0.25 in this run"):
        check_checkpoint(ckpt, wider)
    other_card = resolved(compose_cfg, [*TINY, "device=sk_mtj_7state"], tmp_path)
    with pytest.raises(ValueError, match=r"device.name='sk_mtj_3state' in the checkpoint, 'sk_mtj_7state' in this run"):
        check_checkpoint(ckpt, other_card)
    check_checkpoint(ckpt, resolved(compose_cfg, [*TINY, "trainer.max_epochs=9"], tmp_path))  # more epochs: fine


def test_truncated_checkpoint_is_one_line(tmp_path):
    full = tmp_path / "full.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "loops": {}}, full)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(full.read_bytes()[:2000])
    line = one_config_error(run_train([*TINY, f"ckpt_path={cut}", f"hydra.run.dir={tmp_path / 'run'}"]))
    assert f"ckpt_path={cut}: not a readable checkpoint (truncated or not a torch file" in line
    assert "weights_only" not in line


def test_nan_at_the_first_step_does_not_claim_a_checkpoint(tmp_path):
    proc = run_train([*TINY, "+callbacks.poison._target_=helpers.callbacks.PoisonWeightsAtEpoch",
                      "+callbacks.poison.epoch=0", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 1, proc.stderr[-2000:]
    res = read_results(tmp_path)
    assert res["error_kind"] == "non-finite loss" and res["error"].endswith("no checkpoint was written")
