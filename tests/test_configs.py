"""Every shipped config composes through Hydra, as train.py composes it."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CONF, ROOT
from quest.pipeline import instantiate_callbacks

SWEEPS = sorted(p.stem for p in (ROOT / "sweeps" / "sweep").glob("*.yaml"))


@pytest.mark.parametrize("group", ["data", "model", "neuron", "precision", "encoding", "device", "pattern", "trainer", "logger"])
def test_every_group_option_composes(compose_cfg, group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose_cfg([f"{group}='{option}'" if option.isdigit() else f"{group}={option}"])
        assert cfg[group] is not None or group == "logger"


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_composes(compose_cfg, sweep):
    cfg = compose_cfg([f"+sweep={sweep}"])
    assert cfg.hydra.sweeper.params, sweep


def test_slurm_launcher_config(compose_cfg):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_cfg(["hydra/launcher=quest_slurm", "trainer=ddp"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices == 4


def test_experiments_resolve_and_build(compose_cfg):
    qs = compose_cfg(["experiment=quickstart"])
    assert qs.data.source == "bundled" and qs.model.width_mult == 0.25 and qs.trainer.accelerator == "cpu"
    paper = compose_cfg(["experiment=quest_cifar10"])
    assert paper.data.batch_size == 256 and paper.data.val_size == 0 and paper.trainer.max_epochs == 100
    assert paper.module.lr == 0.001 and paper.module.weight_decay == 0.0001 and paper.encoding.time_steps == 4
    callbacks = instantiate_callbacks(
        compose_cfg(["experiment=quickstart", "~callbacks.model_checkpoint", "~callbacks.last_checkpoint"])
    )
    monitors = [c for c in callbacks if hasattr(c, "mapping")]
    # the hardware-aware training callback (off by default) receives the same mapping
    assert [type(m).__name__ for m in monitors] == ["HardwareAwareTraining", "TransitionMonitor", "ActivityMonitor"]
    assert monitors[0].mapping is monitors[1].mapping is monitors[2].mapping  # built once per run, shared
    assert not monitors[0].active
    assert monitors[0].mapping.card.name == "sk_mtj_3state" and len(monitors[0].mapping.patterns) == 6
