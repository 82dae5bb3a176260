"""The CPU-scale reproduction's sweep config (sweeps/sweep/cpu_reproduction.yaml, reproduction/run.sh)."""
from __future__ import annotations

from conftest import ROOT


def test_cpu_reproduction_is_the_paper_recipe_at_width_quarter(compose_cfg):
    cfg = compose_cfg(["+sweep=cpu_reproduction", "precision='3'", "neuron=lif_soft"])
    assert (cfg.data.source, cfg.data.val_size, cfg.data.batch_size, cfg.data.drop_last) == ("npz", 0, 256, True)
    assert cfg.data.path.endswith("shared/data/cifar10/cifar10.npz")
    assert (cfg.model.width_mult, cfg.model.layers[0], cfg.encoding.time_steps) == (0.25, 128, 4)
    assert (cfg.module.lr, cfg.module.weight_decay, cfg.module.scheduler) == (0.001, 0.0001, "cosine")
    assert cfg.module.start_spike_rate is None  # the paper's init unless the remedy is asked for
    assert (cfg.trainer.accelerator, cfg.trainer.max_epochs, cfg.test_ckpt) == ("cpu", 15, "last")
    assert (cfg.precision.bits, cfg.neuron.name) == (3, "lif_soft")
    assert list(cfg.logger) == ["csv"]
    assert cfg.callbacks.last_checkpoint.every_n_steps == 25  # long epochs resume mid-epoch
    assert dict(cfg.hydra.sweeper.params) == {"precision": "'2','3','4',fp32", "neuron": "if_hard"}


def test_run_script_covers_the_grid():
    script = (ROOT / "reproduction" / "run.sh").read_text()
    runs = [line.split('"', 2)[-1].strip() for line in script.splitlines() if line.startswith("python train.py -m")]
    assert runs == [  # the headline at the sweep's 15 epochs, the paper's 3/4-bit for one, the rest matched
        "precision=2 neuron=if_hard",
        "precision=3,4 neuron=if_hard trainer.max_epochs=1",
        "precision=2,fp32 neuron=if_hard",
        "precision=3,4 neuron=if_hard module.start_spike_rate=0.1",
        "precision=2 neuron=if_soft,lif_hard,lif_soft",
    ]
    assert "SWEEP_DIR=${SWEEP_DIR:-reproduction/cpu_sweep}" in script  # committed: it outlives the session
    assert script.count('"${short[@]}"') == 3 and 'short=("${common[@]}" "trainer.max_epochs=$SHORT_EPOCHS")' in script
