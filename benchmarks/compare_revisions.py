"""QUEST's training step at an earlier commit against the working tree, with the floor and SpikingJelly.

    python benchmarks/compare_revisions.py [--before-rev HEAD] [--mixed] [--batch-size 16] [--steps 8]
                                           [--threads 2] [--out PATH.json]

Variants (bench_train_step.py's step: forward and loss, under torch.autocast(bfloat16) with --mixed,
backward, Adam):
- before: QUEST's VGG8 (2-bit, IF_Hard, T = 4) from `quest/` at --before-rev, extracted with
  `git archive` and imported as a separate package;
- now:    the same network from the working tree;
- floor, spikingjelly: as in bench_train_step.py.

All four live in one process and are timed interleaved (one step of each per round, order rotated);
ratios are medians of per-round ratios, so slow phases of a shared machine hit every variant alike.
`--clock cpu` times each step by the CPU time of the calling thread (time.thread_time) instead of the
wall clock: with --threads 1 every op and the backward run on that thread, so on a loaded machine this
counts the work done and not the time spent waiting for a core (memory-bandwidth contention still
shows). Wall-clock ratios on a quiet machine are the ones to publish.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_train_step as bench  # noqa: E402
from ablation_fast_paths import quest_before  # noqa: E402

VARIANTS = ("before", "now", "floor", "spikingjelly")


def build(name: str, args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "before":
        from quest_before.models.vgg import SpikingVGG
        from quest_before.snn.encoding import DirectEncoder

        return SpikingVGG(DirectEncoder(args.time_steps), {"name": "if_hard", "theta": 0.5}, bits=args.bits)
    if name == "now":
        return bench.build_quest(args.time_steps, args.bits)
    if name == "floor":
        return bench.DenseFloor(args.time_steps)
    return bench.build_spikingjelly(args.time_steps, torch.device("cpu"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in VARIANTS if n != "spikingjelly" or bench.available("spikingjelly")]
    trainers = {n: bench.Trainer(n, build(n, args), mixed=args.mixed) for n in names}
    x, y = bench._inputs(args, torch.device("cpu"))
    times: dict[str, list[float]] = {n: [] for n in names}
    load_start = bench._load()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    for i in range(args.warmup + args.steps):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            t0 = clock()
            trainers[n].step(x, y)
            if i >= args.warmup:
                times[n].append(clock() - t0)
        if i >= args.warmup:
            print(f"round {i + 1 - args.warmup}/{args.steps}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.0f} ms" for n in names), flush=True)
    ratios = {
        f"{a}/{b}": bench.paired_ratio(times[a], times[b])
        for a in ("now", "before")
        for b in names
        if a != b and not (a == "before" and b == "now")
    }
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "before_rev": args.before_rev,
        "precision": "bf16-mixed" if args.mixed else "32-true",
        "clock": args.clock,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "load_average": {"start": load_start, "end": bench._load()},
        "median_ms": {n: statistics.median(ts) * 1e3 for n, ts in times.items()},
        "ratios": ratios,
        "times_ms": {n: [t * 1e3 for t in ts] for n, ts in times.items()},
    }


def markdown(rep: dict[str, Any]) -> str:
    lines = [
        f"{rep['precision']}, batch {rep['batch_size']}, {rep['threads']} threads, {rep['steps']} rounds, "
        f"{'CPU time of the calling thread' if rep['clock'] == 'cpu' else 'wall clock'}, "
        f"load {rep['load_average']['start']} -> {rep['load_average']['end']}; before = {rep['before_rev']}",
        "",
        "| variant | median step (ms) |",
        "| --- | ---: |",
    ]
    lines += [f"| {n} | {ms:.0f} |" for n, ms in rep["median_ms"].items()]
    lines += ["", "| ratio (median of per-round ratios) | value |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.3f}x |" for k, v in rep["ratios"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before-rev", default="HEAD")
    p.add_argument("--mixed", action="store_true", help="bf16 autocast, as trainer.precision=bf16-mixed")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--bits", type=int, default=2)
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="cpu: thread CPU time (use with --threads 1)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu needs --threads 1 (other threads' work would not be counted)")
    with quest_before(args.before_rev):
        bench.publish(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
