"""The training recipe of the LightningModule, from the real configs (REFERENCE.md section 6)."""
from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from quest.pipeline import one_line


@pytest.mark.parametrize("scheduler", ["cosine", "step"])
def test_paper_recipe_optimizer_and_schedule(compose_cfg, scheduler):
    cfg = compose_cfg(["experiment=quest_cifar10", f"module.scheduler={scheduler}"])
    module = instantiate(cfg.module, net=instantiate(cfg.model))
    module.trainer = L.Trainer(max_epochs=cfg.trainer.max_epochs, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
    opt_cfg = module.configure_optimizers()
    optimizer, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert group["lr"] == 1e-3 and group["weight_decay"] == 1e-4
    assert group["fused"] is True  # one kernel for all weights on CPU and CUDA
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in module.parameters())
    assert opt_cfg["lr_scheduler"]["interval"] == "epoch"
    if scheduler == "cosine":
        assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max == 100
    else:
        assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR)
        assert sorted(sched.milestones) == [50, 75] and sched.gamma == 0.1


def test_compile_scan_switch_is_set_by_each_run_and_checked(compose_cfg):
    """module.compile_scan (opt-in) sets the fused scan's compiled backward for the run that sets up,
    in either direction, so a multirun's job never inherits the switch of the job before it."""
    from quest.snn import scan

    try:
        for value in (True, False):
            cfg = compose_cfg(["experiment=quickstart", f"module.compile_scan={str(value).lower()}"])
            module = instantiate(cfg.module, net=instantiate(cfg.model))
            scan.set_compile(not value)
            module.setup("fit")
            assert scan.compile_enabled() is value
    finally:
        scan.set_compile(False)
    cfg = compose_cfg(["experiment=quickstart", "module.compile_scan=yes"])
    with pytest.raises(Exception) as err:
        instantiate(cfg.module, net=instantiate(cfg.model))
    assert one_line(err.value) == "module.compile_scan='yes': allowed true or false"
