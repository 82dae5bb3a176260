"""Before/after of QUEST's fast paths, one change at a time (the training step of bench_train_step.py).

    python benchmarks/ablation_fast_paths.py [--before-rev e21b00d] [--steps N] [--threads K]

Variants, all QUEST's VGG8 at 2-bit, IF_Hard, T = 4, direct encoding:
- before:       the code at --before-rev (the first fused scan: per-step temporaries, H saved,
                plain F.conv2d and nn.MaxPool2d), extracted with `git archive` into a temp dir;
- scan:         + the new scan kernels (quest/snn/scan.py) used by the neuron alone: in-place
                forward, backward over H in place, conv and pool still plain;
- fused-layer:  + conv and scan in one node (H over the current, bool spike inputs, static layer
                recomputed, conv backward per step on CPU) and the indices-only max pool: the default;
- compiled:     + the torch.compile backward kernel (QUEST_COMPILE=1);
- floor:        the dense ReLU ANN of bench_train_step.py.

Times are interleaved per round, ratios are medians of per-round ratios; peak RSS (VmHWM) is the
median over --memory-repeats fresh processes per variant.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_train_step as bench  # noqa: E402

VARIANTS = ("before", "scan", "fused-layer", "compiled", "floor")


def extract_before(rev: str, into: Path) -> None:
    """quest/ at `rev` as the package `quest_before` under `into`."""
    archive = subprocess.run(["git", "archive", rev, "quest"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "quest").rename(into / "quest_before")
    for f in (into / "quest_before").rglob("*.py"):
        text = f.read_text().replace("from quest.", "from quest_before.")
        f.write_text(text.replace("import quest.", "import quest_before."))
    sys.path.insert(0, str(into))


@contextlib.contextmanager
def quest_before(rev: str) -> Iterator[Path]:
    """quest/ at `rev` importable as `quest_before` (extract_before into a temporary folder,
    removed on exit)."""
    tmp = Path(tempfile.mkdtemp(prefix="quest_before_"))
    try:
        extract_before(rev, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plain_layer_forward(self: Any, x: torch.Tensor, time_steps: int, static: bool = False) -> torch.Tensor:
    """SpikingConv.forward without the fused layer: neuron(current(x)), then the module's pool."""
    membrane_q = self.quantizer if self.quantize_membrane else None
    spikes = self.neuron(self.current(x, time_steps, static), membrane_q)
    if self.pool is None:
        return spikes
    t, b = spikes.shape[:2]
    return self.pool(spikes.flatten(0, 1)).unflatten(0, (t, b))


def make(name: str, args: argparse.Namespace) -> tuple[bench.Trainer, Callable[[bool], None]]:
    """(trainer, switch(on)) for a variant; switch installs its code paths around each step."""
    from quest.snn import scan
    from quest.snn.layers import SpikingConv

    fused_forward = SpikingConv.forward

    def switch(on: bool) -> None:
        SpikingConv.forward = _plain_layer_forward if (on and name == "scan") else fused_forward
        scan.set_compile(on and name == "compiled")

    torch.manual_seed(0)
    if name == "before":
        from quest_before.models.vgg import SpikingVGG
        from quest_before.snn.encoding import DirectEncoder

        net = SpikingVGG(DirectEncoder(args.time_steps), {"name": "if_hard", "theta": 0.5}, bits=args.bits)
    elif name == "floor":
        net = bench.DenseFloor(args.time_steps)
    else:
        net = bench.build_quest(args.time_steps, args.bits)
    return bench.Trainer(name, net), switch


def child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer, switch = make(args.child, args)
    x, y = bench._inputs(args, torch.device("cpu"))
    switch(True)
    for _ in range(3):
        trainer.step(x, y)
    print(f"PEAK {bench._peak_rss_mib():.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before-rev", default="e21b00d")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--bits", type=int, default=2)
    p.add_argument("--memory-repeats", type=int, default=3, help="fresh processes per variant (median)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--before-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    tmp = Path(args.before_dir) if args.before_dir else Path(tempfile.mkdtemp(prefix="quest_before_"))
    if args.before_dir:
        sys.path.insert(0, str(tmp))
    else:
        extract_before(args.before_rev, tmp)
    if args.child:
        child(args)
        return
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        made = {n: make(n, args) for n in VARIANTS}
        x, y = bench._inputs(args, torch.device("cpu"))
        times: dict[str, list[float]] = {n: [] for n in VARIANTS}
        for i in range(args.warmup + args.steps):
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            for n in order:
                trainer, switch = made[n]
                switch(True)
                t0 = time.perf_counter()
                trainer.step(x, y)
                dt = time.perf_counter() - t0
                switch(False)
                if i >= args.warmup:
                    times[n].append(dt)
        peaks = {}
        for n in VARIANTS:
            cmd = [
                sys.executable, __file__, "--child", n, "--before-dir", str(tmp), "--threads", str(args.threads),
                "--batch-size", str(args.batch_size), "--time-steps", str(args.time_steps), "--bits", str(args.bits),
            ]  # fmt: skip
            runs = []
            for _ in range(args.memory_repeats):
                out = subprocess.run(cmd, capture_output=True, text=True).stdout
                runs += [float(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK ")]
            peaks[n] = statistics.median(runs) if runs else float("nan")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} rounds")
    print("| variant | median step (ms) | time / before | time / floor | peak RSS (MiB) | RSS / before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n in VARIANTS:
        med = statistics.median(times[n]) * 1e3
        r_before = bench.paired_ratio(times[n], times["before"])
        r_floor = bench.paired_ratio(times[n], times["floor"])
        rss = peaks[n] / peaks["before"]
        print(f"| {n} | {med:.0f} | {r_before:.2f}x | {r_floor:.2f}x | {peaks[n]:.0f} | {rss:.2f}x |")


if __name__ == "__main__":
    main()
