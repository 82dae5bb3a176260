"""A slice of one full-CIFAR-10 epoch, end to end: QUEST as train.py runs it against SpikingJelly's bare loop.

    python benchmarks/bench_epoch.py [--steps 39] [--rounds 3] [--width 0.25] [--batch-size 128]
                                     [--device cpu|cuda] [--precision 32-true|bf16-mixed]
                                     [--threads K] [--compile-scan] [--data PATH.npz] [--out PATH.json]

Both sides train the same network (QUEST's VGG8 at `--width`: the encoding conv with a soft-reset IF
neuron, then hard-reset IF neurons with theta 0.5, 2-bit MINT weights and membrane on QUEST's side,
fp32 weights on SpikingJelly's), T = 4, batch `--batch-size`, on the same data (the shared CIFAR-10
arrays, whole training set, the test set as validation: the paper's protocol), with the same batched
augmentation (random crop 32 / pad 4, flip, normalisation) and Adam (lr 1e-3, weight decay 1e-4).

- quest: the real configs composed by Hydra (`data=cifar10_npz data.val_size=0 model.width_mult=...
  logger=csv`, callbacks as conf/callbacks/default.yaml: checkpoints, transition and activity
  monitors) built by `quest.pipeline.build` and fitted by Lightning, exactly the objects train.py
  fits. The timed span runs from the epoch's first training batch to the end of the epoch (training
  batches, validation, the monitors' epoch-end work and the checkpoint), measured by two callbacks
  placed first and last in the trainer's list.
- spikingjelly: SpikingJelly 2.0's multi-step IFNode network (benchmarks/bench_train_step.py's
  builder at this width) in a plain PyTorch loop: gather a batch, augment, forward, mean-over-t
  cross-entropy, backward, Adam step; then the validation batches under no_grad. No monitors.

An epoch has floor(50000 / batch) training batches and 10000 validation images; `--steps` training
batches are timed together with the same share of the validation set (rounded up to whole
evaluation batches of 512), so validation and the per-step monitor (transitions) enter in proportion.
The per-epoch monitors do not: the layer-health monitor measures its batches once per epoch (the
first training batch, and 2 validation batches re-run with the reference neuron), the activity
monitor up to 4 validation batches, whatever the slice's length, so a slice of 1/10 of an epoch
carries ~10x their share. The time inside the layer-health measurements is therefore recorded
(`health_s`) and QUEST is also reported prorated: slice time - health_s (1 - steps / epoch steps);
the activity monitor stays in whole (conservative for QUEST). Rounds alternate which side runs first; images/s is training
images over the timed span; the ratio is the median of per-round ratios (both sides timed in the same
round, so slow phases of a shared machine hit both).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import bench_train_step as step_bench  # noqa: E402

TRAIN_IMAGES, VAL_IMAGES, EVAL_BATCH = 50_000, 10_000, 512
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def slice_sizes(steps: int, batch_size: int) -> tuple[int, int]:
    """(training batches, validation batches of EVAL_BATCH) of an epoch slice of `steps` batches."""
    per_epoch = TRAIN_IMAGES // batch_size
    val_images = VAL_IMAGES * min(steps, per_epoch) / per_epoch
    return steps, max(1, math.ceil(val_images / EVAL_BATCH))


def quest_overrides(args: argparse.Namespace, out_dir: Path, val_batches: int) -> list[str]:
    return [
        "data=cifar10_npz", f"data.path={args.data}", "data.val_size=0", f"data.batch_size={args.batch_size}",
        f"data.eval_batch_size={EVAL_BATCH}", f"model.width_mult={args.width}", "logger=csv",
        f"trainer={'gpu' if args.device.startswith('cuda') else 'cpu'}", f"trainer.precision={args.precision}",
        "trainer.max_epochs=1", f"++trainer.limit_train_batches={args.steps}",
        f"++trainer.limit_val_batches={val_batches}", "trainer.enable_progress_bar=false",
        "~callbacks.rich_progress_bar", f"paths.output_dir={out_dir}", f"module.compile_scan={str(args.compile_scan).lower()}",
    ]  # fmt: skip


class _Clock:
    """Lightning callbacks marking the start (placed first) and end (placed last) of the epoch."""

    def __init__(self) -> None:
        import lightning as L

        clock = self

        class Start(L.Callback):
            def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
                _sync(module.device)
                clock.t0 = time.perf_counter()

        class End(L.Callback):
            def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
                _sync(module.device)
                clock.t1 = time.perf_counter()

        self.start, self.end = Start(), End()
        self.t0 = self.t1 = math.nan


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_quest(args: argparse.Namespace, val_batches: int) -> tuple[float, float]:
    """Seconds of one epoch slice through QUEST's real pipeline, and of them, the seconds spent in the
    layer-health monitor's measurements (a per-epoch cost, see the module docstring)."""
    from hydra import compose, initialize_config_dir

    from quest.monitors import layer_health
    from quest.pipeline import build

    measure, spent = layer_health.measure_health, [0.0]

    def timed_measure(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return measure(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    os.environ.setdefault("QUEST_ROOT", str(ROOT))
    with tempfile.TemporaryDirectory(prefix="quest-bench-epoch-") as tmp:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=quest_overrides(args, Path(tmp), val_batches))
        parts = build(cfg, "bench_epoch", None)
        clock = _Clock()
        parts.trainer.callbacks.insert(0, clock.start)
        parts.trainer.callbacks.append(clock.end)
        layer_health.measure_health = timed_measure
        try:
            parts.trainer.fit(parts.module, parts.datamodule)
        finally:
            layer_health.measure_health = measure
        if parts.trainer.global_step != args.steps:
            raise RuntimeError(f"QUEST ran {parts.trainer.global_step} steps, not {args.steps}")
        return clock.t1 - clock.t0, spent[0]


class BareLoop:
    """SpikingJelly's network trained by a plain loop on the same tensors and augmentation."""

    def __init__(self, args: argparse.Namespace, arrays: Any, device: torch.device) -> None:
        # the layer widths of QUEST's SpikingVGG at this width_mult: max(1, round(width * width_mult))
        scaled = tuple(item if item == "M" else max(1, round(int(item) * args.width)) for item in step_bench.LAYERS)
        hidden = max(1, round(step_bench.HIDDEN * args.width))
        torch.manual_seed(0)
        self.net = step_bench.build_spikingjelly(4, device, scaled, hidden).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, weight_decay=1e-4)
        self.device, self.args = device, args
        self.x_train, self.y_train = arrays.x_train.to(device), arrays.y_train.to(device)
        self.x_val, self.y_val = arrays.x_test.to(device), arrays.y_test.to(device)
        self.mixed = args.precision == "bf16-mixed"
        self.epoch = 0

    def _prep(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        from quest.data.augment import normalize, random_crop, random_flip

        if train:
            x = random_flip(random_crop(x, 4))
        return normalize(x, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))

    def run(self, steps: int, val_batches: int) -> float:
        """Seconds of `steps` training batches and `val_batches` validation batches."""
        b = self.args.batch_size
        g = torch.Generator().manual_seed(self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.x_train), generator=g).to(self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        self.net.train()
        for i in range(steps):
            idx = order[i * b : (i + 1) * b]
            x, y = self._prep(self.x_train[idx], True), self.y_train[idx]
            self.opt.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed):
                logits = self.net(x)
                loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(logits.shape[0]))
            loss.backward()
            self.opt.step()
        self.net.eval()
        correct = 0
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed):
            for i in range(val_batches):
                x = self._prep(self.x_val[i * EVAL_BATCH : (i + 1) * EVAL_BATCH], False)
                correct += int((self.net(x).sum(0).argmax(-1) == self.y_val[i * EVAL_BATCH : (i + 1) * EVAL_BATCH]).sum())
        _sync(self.device)
        return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from quest.data.sources import load_npz

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps, val_batches = slice_sizes(args.steps, args.batch_size)
    peer = BareLoop(args, load_npz(Path(args.data), 10), device) if step_bench.available("spikingjelly") else None
    skipped = {} if peer else {"spikingjelly": "spikingjelly not installed (pip install -e '.[bench]')"}
    load_start = step_bench._load()
    if peer is not None:
        peer.run(2, 1)  # warm-up: SpikingJelly picks and loads its kernels on the first call
    warmup_s = None
    if args.compile_scan:  # compiling is a once-per-process cost: done in an untimed 2-step slice first
        t0 = time.perf_counter()
        run_quest(argparse.Namespace(**{**vars(args), "steps": 2}), 1)
        warmup_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {"quest": [], "spikingjelly": []}
    health: list[float] = []
    share = min(1.0, steps / (TRAIN_IMAGES // args.batch_size))
    for r in range(args.rounds):
        sides = ["quest", "spikingjelly"] if r % 2 == 0 else ["spikingjelly", "quest"]
        for side in sides:
            if side == "quest":
                t_quest, t_health = run_quest(args, val_batches)
                times["quest"].append(t_quest)
                health.append(t_health)
            elif peer is not None:
                times["spikingjelly"].append(peer.run(steps, val_batches))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {ts[-1]:.1f} s" for n, ts in times.items() if ts), flush=True)
    load_end = step_bench._load()
    images = steps * args.batch_size
    results = {
        n: {"median_s": statistics.median(ts), "images_per_s": images / statistics.median(ts), "times_s": ts}
        for n, ts in times.items()
        if ts
    }
    prorated = [t - h * (1.0 - share) for t, h in zip(times["quest"], health)]
    results["quest"]["health_s"] = health
    results["quest"]["prorated_median_s"] = statistics.median(prorated)
    results["quest"]["prorated_images_per_s"] = images / statistics.median(prorated)
    if peer is not None:
        results["quest"]["spikingjelly_images_per_s_over_quest"] = step_bench.paired_ratio(times["quest"], times["spikingjelly"])
        results["quest"]["prorated_time_over_spikingjelly"] = step_bench.paired_ratio(prorated, times["spikingjelly"])
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": step_bench.machine(device),
        "load_average": {"start": load_start, "end": load_end},
        "config": {
            "width": args.width, "batch_size": args.batch_size, "time_steps": 4, "bits": 2, "steps": steps,
            "val_batches": val_batches, "eval_batch": EVAL_BATCH, "rounds": args.rounds,
            "precision": args.precision, "compile_scan": args.compile_scan, "compile_warmup_s": warmup_s,
            "threads": args.threads or torch.get_num_threads(),
            "epoch_steps": TRAIN_IMAGES // args.batch_size,
        },  # fmt: skip
        "skipped": skipped,
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    c, res = report["config"], report["results"]
    lines = [
        "| variant | median time of the slice (s) | training images/s | epoch estimate (min) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for n, r in res.items():
        label = "QUEST (train.py pipeline, monitors on)" if n == "quest" else "SpikingJelly 2.0 (bare loop)"
        epoch_min = r["median_s"] * c["epoch_steps"] / c["steps"] / 60
        lines.append(f"| {label} | {r['median_s']:.1f} | {r['images_per_s']:.1f} | {epoch_min:.1f} |")
    ratio = res.get("quest", {}).get("spikingjelly_images_per_s_over_quest")
    q = res.get("quest", {})
    if "prorated_median_s" in q:
        lines.insert(
            3,
            f"| QUEST, layer-health measurements prorated to the slice | {q['prorated_median_s']:.1f} "
            f"| {q['prorated_images_per_s']:.1f} | {q['prorated_median_s'] * c['epoch_steps'] / c['steps'] / 60:.1f} |",
        )
    lines += [
        "",
        f"Width x{c['width']}, batch {c['batch_size']}, T = {c['time_steps']}, QUEST at {c['bits']}-bit, "
        f"{c['precision']}{', compiled scan backward' if c.get('compile_scan') else ''}; {c['steps']} of "
        f"{c['epoch_steps']} training batches and {c['val_batches']} "
        f"validation batches of {c['eval_batch']} per round, {c['rounds']} rounds; {c['threads']} torch "
        f"thread(s); load average {report['load_average']['start']} -> {report['load_average']['end']}.",
    ]
    if ratio:
        lines.append(
            f"QUEST time / SpikingJelly time (median of per-round ratios): {ratio:.2f}x "
            f"(QUEST images/s = {1 / ratio:.2f}x SpikingJelly's)"
            + (f"; with the layer-health measurements ({statistics.median(q['health_s']):.1f} s per slice, a per-epoch "
               f"cost) prorated: {q['prorated_time_over_spikingjelly']:.2f}x." if "prorated_time_over_spikingjelly" in q else ".")
        )
    for n, why in report["skipped"].items():
        lines.append(f"Skipped {n}: {why}.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=39, help="training batches timed per round (an epoch has 50000 // batch)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--compile-scan", action="store_true",
                   help="QUEST with module.compile_scan=true (compiled in an untimed 2-step slice first)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CIFAR-10 .npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--out", default=None, help="write the report to PATH (.json) and its table to PATH with .md")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        p.error(f"--data={args.data}: no such file")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    step_bench.publish(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
