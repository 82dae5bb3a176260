"""The DDP strategy of trainer=ddp and trainer=ddp_cpu: Lightning's, plus a clean process-group exit."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from hydra.utils import instantiate

from conftest import ROOT, subprocess_env
from quest.distributed import DDPStrategy

EXIT_CHECK = textwrap.dedent(
    """
    import atexit
    import torch.distributed as dist
    import lightning as L
    from quest.distributed import DDPStrategy

    # atexit runs last-registered first: this check runs after any handler the strategy registers
    atexit.register(lambda: print("process group at exit:", "alive" if dist.is_initialized() else "destroyed"))
    trainer = L.Trainer(accelerator="cpu", devices=1, strategy=DDPStrategy(process_group_backend="gloo"),
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.setup_environment()
    assert dist.is_initialized() and dist.get_backend() == "gloo"
    """
)


def test_ddp_configs_build_quest_strategy(compose_cfg, tmp_path):
    cfg = compose_cfg(["trainer=ddp_cpu", "logger=none", f"trainer.default_root_dir={tmp_path}"])
    cpu = instantiate(cfg.trainer, logger=False)
    assert type(cpu.strategy) is DDPStrategy
    assert cpu.strategy._start_method == "spawn" and cpu.num_devices == 2
    cpu.strategy._configure_launcher()
    assert type(cpu.strategy.launcher).__name__ == "_FitStateReturningLauncher"
    gpu = compose_cfg(["trainer=ddp", "logger=none"]).trainer
    assert gpu.strategy._target_ == "quest.distributed.DDPStrategy"


def test_gloo_process_group_is_destroyed_before_interpreter_exit():
    proc = subprocess.run([sys.executable, "-c", EXIT_CHECK], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process group at exit: destroyed" in proc.stdout
