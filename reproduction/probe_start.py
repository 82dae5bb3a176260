"""Probe the start of training: per-layer health at init and every few optimizer steps.

Builds the model and data from the real Hydra configs (conf/), trains with the configured optimiser
(Adam, lr and weight decay of `module`) on full CIFAR-10 batches, and every `--every` steps measures
each spiking layer (quest/monitors/layer_health.py) on a fixed batch of test images. Prints one JSON
line per measurement; `--out` also writes them to a file.

    PYTHONPATH=$PWD python reproduction/probe_start.py --steps 300 --every 50 \
        precision=4 neuron=if_hard model.width_mult=0.25 data.batch_size=64
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quest.config_checks import quote_numeric_group_options  # noqa: E402
from quest.data.augment import normalize, random_crop, random_flip  # noqa: E402
from quest.monitors.layer_health import measure_health  # noqa: E402
from quest.snn.start_calibration import calibrate_start  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--probe-batch", type=int, default=128, help="test images measured at each probe")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("QUEST_ROOT", str(ROOT))
    OmegaConf.register_new_resolver("unquote", lambda s: str(s).replace("'", ""), replace=True)
    base = ["data=cifar10_npz", "data.val_size=0", "logger=none"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=quote_numeric_group_options(base + args.overrides, ROOT / "conf"), return_hydra_config=True)
    torch.manual_seed(int(cfg.seed))
    dm = instantiate(cfg.data)
    dm.setup()
    net = instantiate(cfg.model)
    mod = instantiate(cfg.module, net=net)
    opt = torch.optim.Adam(net.parameters(), lr=mod.hparams.lr, weight_decay=mod.hparams.weight_decay)
    hp = dm.hparams
    x_probe = normalize(dm.splits["test"][0][: args.probe_batch], hp.mean, hp.std)
    loader = dm.train_dataloader()
    rows = []
    out = args.out.open("w") if args.out else None
    t0 = time.time()

    def probe(step: int, loss: float | None) -> None:
        layers = measure_health(net, [x_probe])
        row = {"step": step, "loss": loss, "wall_s": round(time.time() - t0, 1), "overrides": args.overrides, "layers": layers}
        rows.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    probe(0, None)
    step, losses = 0, []
    while step < args.steps:
        for x, y in loader:
            x = normalize(random_flip(random_crop(x, hp.crop_padding)), hp.mean, hp.std)
            if step == 0 and mod.hparams.start_spike_rate is not None:  # as QuestModule does
                print(json.dumps({"start_gains": calibrate_start(net, x, mod.hparams.start_spike_rate)}), flush=True)
                probe(0, None)
            net.train()
            logits = net(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(logits.shape[0]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step % args.every == 0 or step == args.steps:
                probe(step, sum(losses) / len(losses))
                losses = []
            if step >= args.steps:
                break
    if out:
        out.close()
    print(f"# ln(10) = {math.log(10):.4f}; {args.steps} steps in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
