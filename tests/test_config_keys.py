"""Unknown keys and wrong value types are refused before Hydra runs, naming the key (issue 16, items 4-5)."""
from __future__ import annotations

import pytest

from conftest import CONF, ROOT, TINY, run_train
from quest.config_checks import ConfigError
from quest.config_keys import check_override_keys


def check(*argv: str) -> None:
    check_override_keys(list(argv), CONF, [ROOT / "sweeps"])


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["+precison=3"], "+precison=3: unknown key 'precison' (did you mean precision?)"),
        (["precison=2"], "precison=2: unknown key 'precison' (did you mean precision?)"),
        (["module.lrr=0.1"], "unknown key 'module.lrr' (did you mean module.lr?)"),
        (["+trainer.limit_train_batchs=5"], "(did you mean trainer.limit_train_batches?)"),
        (["callbacks.model_checkpoint.sav_top_k=2"], "(did you mean callbacks.model_checkpoint.save_top_k?)"),
        (["~callbacks.rich_progres_bar"], "(did you mean callbacks.rich_progress_bar?)"),
        (["neuron.theta=abc"], "neuron.theta=abc: must be a number (default 0.5)"),
        (["-m", "neuron.theta=0.5,abc"], "neuron.theta=abc: must be a number"),
        (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5: must be an integer (default 100)"),
        (["seed=abc"], "seed=abc: must be an integer"),
        (["trainer.enable_progress_bar=2"], "trainer.enable_progress_bar=2: must be true or false"),
        (["encoding.time_steps.x=2"], "'encoding.time_steps' holds a value, not keys"),
    ],
)
def test_unknown_keys_and_wrong_types_are_refused(argv, expected):
    with pytest.raises(ConfigError) as err:
        check(*argv)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "argv",
    [
        TINY,
        ["-m", "precision=2,3", "neuron=if_hard,lif_soft", "seed=1,2,3"],
        ["+sweep=precision_neuron", "hydra.sweep.dir=/tmp/x", "hydra/launcher=quest_slurm"],
        ["neuron.theta=1", "neuron.leak=0.5", "encoding.time_steps=2", "model.width_mult=0.25"],
        ["+trainer.profiler=simple", "trainer.limit_train_batches=5", "trainer.precision=16", "trainer.devices=auto"],
        ["+callbacks.poison._target_=helpers.callbacks.PoisonWeightsAtEpoch", "+callbacks.poison.epoch=1"],
        ["logger.wandb.tags=[a,b]", "callbacks.transition_monitor.windows.early=[0,5]", "ckpt_path=null"],
        ["data=cifar10_npz", "data.path=/x.npz", "neuron.surrogate=atan", "objectives=[test_acc]"],
    ],
)
def test_valid_overrides_pass(argv):
    check(*argv)


def test_typo_with_plus_is_refused_by_train_py(tmp_path):
    """Hydra's own advice for an unknown key (`+precison=3`) used to train silently at 2-bit."""
    for override, expected in [("+precison=3", "did you mean precision?"), ("neuron.theta=abc", "neuron.theta=abc")]:
        proc = run_train([*TINY, override, f"hydra.run.dir={tmp_path / 'run'}"])
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out[-2000:]
        assert [line for line in out.splitlines() if "config error" in line] == [
            line for line in out.splitlines() if expected in line
        ]
        assert "Traceback" not in out and not (tmp_path / "run").exists()
