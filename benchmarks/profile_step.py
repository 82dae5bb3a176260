"""Where QUEST's training step spends its time: torch.profiler over the step of bench_train_step.py,
split into the components of the fused layer.

    python benchmarks/profile_step.py [--variant quest-bf16] [--batch-size 16] [--steps 3] [--threads 2]
                                      [--before-rev REV] [--out PATH.json]

With --before-rev, QUEST's code at that commit (extracted with `git archive`, as compare_revisions.py
does) is profiled instead of the working tree's, for a before/after breakdown (quest variants only).

The step is bench_train_step.py's (forward and loss under autocast for the -bf16 variants, backward
outside, Adam). Components are the Python functions of the fused path, each wrapped in a
torch.profiler.record_function range for this run only (the library code is not changed):

- conv forward / conv backward: quest.snn.conv._conv / _conv_backward (with their dtype casts);
- scan forward (of which: membrane quantizer) / scan backward (of which: local factors, of which the
  quantizer's derivatives): quest.snn.scan;
- pool backward: the scatter of dL/dS to the argmax indices;
- weight quantizer forward / backward: quest.snn.quantizer._MintQuantize;
- optimizer: Adam's step; head and loss, and the rest, are what is left of the step.

Nested components are reported inside their parent (their time is part of it). Times are the
profiler's wall-clock span of each range summed over the profiled steps (ops run one after the
other, each using all threads), divided by the number of steps; shares are of the whole step.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_train_step as bench  # noqa: E402

# (label, module, attribute): functions wrapped in a record_function range while profiling
WRAPPED = (
    ("conv forward", "quest.snn.conv", "_conv"),
    ("conv backward", "quest.snn.conv", "_conv_backward"),
    ("scan forward", "quest.snn.conv", "scan_forward"),
    ("scan forward: membrane quantizer", "quest.snn.scan", "mint_quantize_out"),
    ("scan backward", "quest.snn.conv", "scan_backward_"),
    ("scan backward: local factors", "quest.snn.scan", "_local_factors"),
    ("scan backward: quantizer derivatives", "quest.snn.scan", "mint_derivatives_"),
    ("pool backward", "quest.snn.conv", "_pool_grad"),
    ("weight quantizer forward", "quest.snn.quantizer", "mint_quantize_out"),
    ("weight quantizer backward", "quest.snn.quantizer", "mint_derivatives_"),
)
STEP = "step"
OPTIMIZER = "optimizer"


def _ranged(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def wrapped(package: str = "quest") -> Any:
    import importlib

    saved = []
    for label, mod_name, attr in WRAPPED:
        mod = importlib.import_module(package + mod_name.removeprefix("quest"))
        saved.append((mod, attr, getattr(mod, attr)))
        setattr(mod, attr, _ranged(label, getattr(mod, attr)))
    try:
        yield
    finally:
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)


def profile(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    bench_args = bench.parse_args(["--batch-size", str(args.batch_size), "--device", "cpu"])
    trainer = bench.make_trainer(args.variant, bench_args, device)
    package = "quest"
    if args.before_rev:
        if not args.variant.startswith("quest"):
            raise SystemExit("--before-rev profiles QUEST variants only")
        from quest_before.models.vgg import SpikingVGG
        from quest_before.snn.encoding import DirectEncoder

        torch.manual_seed(0)
        net = SpikingVGG(DirectEncoder(bench_args.time_steps), {"name": "if_hard", "theta": bench.THETA}, bits=bench_args.bits)
        trainer = bench.Trainer(args.variant, net, mixed=args.variant.endswith(bench.MIXED))
        package = "quest_before"
    opt_step = trainer.opt.step
    trainer.opt.step = _ranged(OPTIMIZER, opt_step)  # type: ignore[method-assign]
    x, y = bench._inputs(bench_args, device)
    with wrapped(package):
        for _ in range(args.warmup):
            trainer.step(x, y)
        walls = []
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                t0 = time.perf_counter()
                with torch.profiler.record_function(STEP):
                    trainer.step(x, y)
                walls.append(time.perf_counter() - t0)
    spans: dict[str, float] = {}
    for ev in prof.events():
        if ev.name in {STEP, OPTIMIZER} | {label for label, _, _ in WRAPPED}:
            spans[ev.name] = spans.get(ev.name, 0.0) + ev.time_range.elapsed_us() / 1e3
    step_ms = spans.pop(STEP) / args.steps
    comps = {k: v / args.steps for k, v in spans.items()}
    top = {k: v for k, v in comps.items() if ":" not in k}
    comps["head, loss and the rest"] = step_ms - sum(top.values())
    ops = prof.key_averages()
    top_ops = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return {
        "variant": args.variant,
        "code": f"quest at {args.before_rev}" if args.before_rev else "working tree",
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "load_average": bench._load(),
        "step_ms_profiled": step_ms,
        "step_ms_wall_median": statistics.median(walls) * 1e3,
        "components_ms": comps,
        "components_pct": {k: 100.0 * v / step_ms for k, v in comps.items()},
        "top_ops_self_ms": {e.key: e.self_cpu_time_total / 1e3 / args.steps for e in top_ops},
    }


def markdown(rep: dict[str, Any]) -> str:
    lines = [
        f"{rep['variant']} ({rep['code']}), batch {rep['batch_size']}, {rep['threads']} threads, load {rep['load_average']}: "
        f"step {rep['step_ms_profiled']:.0f} ms profiled",
        "",
        "| component | ms per step | % of step |",
        "| --- | ---: | ---: |",
    ]
    order = [label for label, _, _ in WRAPPED] + [OPTIMIZER, "head, loss and the rest"]
    for k in order:
        if k in rep["components_ms"]:
            name = k if ":" not in k else "&nbsp;&nbsp;" + k.split(": ", 1)[1]
            lines.append(f"| {name} | {rep['components_ms'][k]:.1f} | {rep['components_pct'][k]:.1f} |")
    lines += ["", "Top operators (self time, ms per step): " + ", ".join(
        f"{k} {v:.1f}" for k, v in rep["top_ops_self_ms"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="quest-bf16", choices=bench.VARIANTS)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--before-rev", default=None, help="profile QUEST at this commit instead of the working tree")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if not args.before_rev:
        bench.publish(profile(args), markdown, args.out)
        return
    from ablation_fast_paths import quest_before

    with quest_before(args.before_rev):
        bench.publish(profile(args), markdown, args.out)


if __name__ == "__main__":
    main()
