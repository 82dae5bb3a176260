"""Time one full training step (forward, backward, Adam step) of QUEST's VGG8 against its peers.

    python benchmarks/bench_train_step.py [--batch-size B] [--steps N] [--warmup W]
                                          [--device cpu|cuda] [--threads K] [--out PATH.json]

Variants, all the same network (REFERENCE.md section 2: conv 3->128 encoding layer with a
soft-reset IF neuron, then 128,128,M,256,256,M,512,512 with IF hard-reset neurons (theta 0.5),
adaptive avg pool 4x4, linear 8192->1024->10), T = 4 steps, direct encoding (the encoding conv runs
once on the B images and its output is repeated over T), loss = mean over t of cross-entropy:

- quest:        SpikingVGG(DirectEncoder(4), {"name": "if_hard", "theta": 0.5}, bits=2), i.e.
                conf/model/vgg8.yaml + conf/neuron/if_hard.yaml + conf/precision/2.yaml:
                2-bit MINT weights and membrane, neuron backend "fused" (eager kernels).
- quest-compiled: the same with the fused scan's torch.compile kernels (QUEST_COMPILE=1); its
                first warm-up step includes compiling.
- spikingjelly: spikingjelly.activation_based, multi-step IFNode (v_reset=0, threshold 0.5,
                triangle surrogate PiecewiseQuadratic(1)), layers in step mode "m"; fp32.
- snntorch:     snn.Leaky(beta=1.0, threshold=0.5, reset_mechanism="zero") in a per-step loop; fp32.
- floor:        the same convs and linears as a ReLU ANN on T*B images (no neurons): the
                arithmetic no SNN of this shape can avoid.
- quest-bf16, floor-bf16, spikingjelly-bf16: the same under torch.autocast(bfloat16), as
                Lightning's trainer.precision=bf16-mixed runs a training step (forward and loss
                under autocast, backward outside): convs and linears in bf16. QUEST keeps its
                neuron scan and MINT quantizer in fp32 (quest/snn/conv.py).
- quest-compiled-bf16: quest-bf16 with the compiled scan backward (`module.compile_scan=true`).

The encoding layer of every spiking variant is a soft-reset IF neuron (v_reset=None in
SpikingJelly, reset_mechanism="subtract" in snnTorch), as in QUEST.

Step times are measured interleaved in one process (variant order rotated every round) and
reported as medians; ratios between variants are medians of per-round ratios (each round times
every variant once, so slow phases of a shared machine hit all of them alike). Peak memory comes
from fresh subprocesses per variant (the median of --memory-repeats): peak RSS (VmHWM) on CPU,
torch.cuda.max_memory_allocated on GPU. Every variant steps torch.optim.Adam with torch's defaults
(foreach), so the table compares the engines. Also reported: the cost of QUEST's transition monitor
(when quest/monitors provides it), the throughput of the data pipeline on its own, and one Adam
step alone, foreach and fused (QuestModule trains with fused Adam).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = (
    "quest", "quest-compiled", "spikingjelly", "snntorch", "floor", "quest-bf16", "spikingjelly-bf16", "floor-bf16",
    "quest-compiled-bf16",
)  # fmt: skip
MIXED = "-bf16"  # suffix of the variants run under torch.autocast(bfloat16)
PEERS = {"spikingjelly": "spikingjelly", "snntorch": "snntorch", "spikingjelly-bf16": "spikingjelly"}
LAYERS: tuple[int | str, ...] = (128, 128, "M", 256, 256, "M", 512, 512)
POOL_OUT, HIDDEN, CLASSES, THETA = 4, 1024, 10, 0.5


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------
def _conv_plan(layers: tuple[int | str, ...] = LAYERS) -> list[tuple[int, int, bool]]:
    """(in, out, followed by maxpool) for every conv of `layers`."""
    plan, cin = [], 3
    for i, item in enumerate(layers):
        if item == "M":
            continue
        pool = i + 1 < len(layers) and layers[i + 1] == "M"
        plan.append((cin, int(item), pool))
        cin = int(item)
    return plan


def _head(channels: int, hidden: int = HIDDEN) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(channels * POOL_OUT * POOL_OUT, hidden), nn.Linear(hidden, CLASSES))
    for m in head:
        nn.init.kaiming_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    return head


def build_quest(time_steps: int, bits: int) -> nn.Module:
    from quest.models.vgg import SpikingVGG
    from quest.snn.encoding import DirectEncoder

    return SpikingVGG(DirectEncoder(time_steps), {"name": "if_hard", "theta": THETA}, bits=bits)


class DenseFloor(nn.Module):
    """The same convs and linears as a ReLU ANN over T*B images: logits [T, B, K]."""

    def __init__(self, time_steps: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        layers: list[nn.Module] = []
        for cin, cout, pool in _conv_plan():
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))
        layers.append(nn.AdaptiveAvgPool2d(POOL_OUT))
        self.features = nn.Sequential(*layers)
        self.head = _head(_conv_plan()[-1][1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x.repeat(self.time_steps, 1, 1, 1)
        return self.head(self.features(x).flatten(1)).unflatten(0, (self.time_steps, b))


def build_spikingjelly(
    time_steps: int, device: torch.device, layers: tuple[int | str, ...] = LAYERS, hidden: int = HIDDEN
) -> nn.Module:
    """SpikingJelly's multi-step IF network of `layers` (QUEST's VGG8 by default)."""
    import inspect

    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    node_args = inspect.signature(neuron.IFNode.__init__).parameters
    extra: dict[str, Any] = {}
    if "backend" in node_args:  # SpikingJelly <= 0.0.0.0.14: pick the backend ourselves
        extra["backend"] = "torch"
        if device.type == "cuda":
            try:
                import cupy  # noqa: F401

                extra["backend"] = "cupy"
            except ImportError:
                pass
    # SpikingJelly >= 2.0 dispatches to its registered CPU / CUDA / Triton kernels by itself.

    def node(soft: bool = False) -> nn.Module:
        return neuron.IFNode(
            v_threshold=THETA,
            v_reset=None if soft else 0.0,
            surrogate_function=surrogate.PiecewiseQuadratic(alpha=1.0),  # triangle max(0, 1-|x|)
            step_mode="m",
            **extra,
        )

    class SJVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            plan = _conv_plan(layers)
            self.time_steps = time_steps
            self.encode = nn.Conv2d(3, plan[0][1], 3, 1, 1, bias=False)  # once on B images
            self.encode_node = node(soft=True)
            feats: list[nn.Module] = []
            for cin, cout, pool in plan[1:]:
                feats += [layer.Conv2d(cin, cout, 3, 1, 1, bias=False), node()]
                if pool:
                    feats.append(layer.MaxPool2d(2))
            feats.append(layer.AdaptiveAvgPool2d(POOL_OUT))
            self.features = nn.Sequential(*feats)
            self.head = _head(plan[-1][1], hidden)
            functional.set_step_mode(self.features, "m")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(self)
            c = self.encode(x)
            s = self.encode_node(c.unsqueeze(0).expand(self.time_steps, *c.shape))
            f = self.features(s)  # [T, B, C, 4, 4]
            return self.head(f.flatten(2))

    return SJVGG()


def build_snntorch(time_steps: int) -> nn.Module:
    import snntorch as snn

    class SnnTorchVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            plan = _conv_plan()
            self.time_steps = time_steps
            self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, 1, 1, bias=False) for i, o, _ in plan)
            self.pools = [p for _, _, p in plan]
            self.lifs = nn.ModuleList(
                snn.Leaky(beta=1.0, threshold=THETA, reset_mechanism="subtract" if k == 0 else "zero")
                for k in range(len(plan))
            )
            self.pool = nn.AdaptiveAvgPool2d(POOL_OUT)
            self.head = _head(plan[-1][1])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            enc = self.convs[0](x)  # static input: the encoding conv runs once
            mems: list[torch.Tensor | None] = [None] * len(self.convs)
            outs = []
            for _ in range(self.time_steps):
                s = enc
                for k, (conv, lif) in enumerate(zip(self.convs, self.lifs)):
                    cur = s if k == 0 else conv(s)
                    if mems[k] is None:
                        mems[k] = torch.zeros_like(cur)
                    s, mems[k] = lif(cur, mems[k])
                    if self.pools[k]:
                        s = F.max_pool2d(s, 2)
                outs.append(self.head(self.pool(s).flatten(1)))
            return torch.stack(outs)

    return SnnTorchVGG()


def build(name: str, args: argparse.Namespace, device: torch.device) -> nn.Module:
    name = name.removesuffix(MIXED)
    if name in ("quest", "quest-compiled"):
        net = build_quest(args.time_steps, args.bits)
    elif name == "floor":
        net = DenseFloor(args.time_steps)
    elif name == "spikingjelly":
        net = build_spikingjelly(args.time_steps, device)
    elif name == "snntorch":
        net = build_snntorch(args.time_steps)
    else:
        raise ValueError(name)
    return net.to(device)


class Trainer:
    """One variant: network + Adam (lr 1e-3, wd 1e-4); step() = forward, mean-over-t CE, backward, step.

    With `mixed`, forward and loss run under torch.autocast(bfloat16) and backward outside it, as
    Lightning's MixedPrecision plugin does for trainer.precision=bf16-mixed.
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        after_step: Callable[[tuple[torch.Tensor, torch.Tensor]], None] | None = None,
        compiled: bool = False,
        mixed: bool = False,
    ) -> None:
        self.name, self.net = name, net
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        self.after_step = after_step
        self.compiled = compiled
        self.mixed = mixed

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.name.startswith("quest"):
            from quest.snn.scan import set_compile

            set_compile(self.compiled)
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.mixed):
            logits = self.net(x)
            t = logits.shape[0]
            loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(t))  # = mean over t of CE(logits_t, y)
        loss.backward()
        self.opt.step()
        if self.after_step is not None:
            self.after_step((x, y))
        return float(loss.detach())


def make_trainer(name: str, args: argparse.Namespace, device: torch.device) -> Trainer:
    torch.manual_seed(0)
    return Trainer(name, build(name, args, device), compiled=name.startswith("quest-compiled"), mixed=name.endswith(MIXED))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inputs(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(0, CLASSES, (args.batch_size,), generator=g)
    return x.to(device), y.to(device)


def available(name: str) -> bool:
    mod = PEERS.get(name)
    return mod is None or importlib.util.find_spec(mod) is not None


# ---------------------------------------------------------------------------------------------
# Monitors (optional: measured only when quest/monitors provides them)
# ---------------------------------------------------------------------------------------------
def monitor_hook(net: nn.Module) -> tuple[Callable[[tuple[torch.Tensor, torch.Tensor]], None] | None, str]:
    """Update QUEST's transition monitor (conf/callbacks/default.yaml, as train.py configures it)
    after a step, as Lightning does after every optimizer step; or why it cannot be measured."""
    find = importlib.util.find_spec
    if find("quest.monitors") is None or find("quest.monitors.transitions") is None:
        return None, "not measured: monitors not present"
    try:
        from types import SimpleNamespace

        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        from quest.pipeline import device_mapping

        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            cfg = compose(config_name="train")
        monitor = instantiate(cfg.callbacks.transition_monitor, _partial_=True)(mapping=device_mapping(cfg))
        module = SimpleNamespace(net=net)
        trainer = SimpleNamespace(current_epoch=0, global_step=0, callbacks=[])
        monitor.on_fit_start(trainer, module)
        monitor.on_train_epoch_start(trainer, module)
    except Exception as e:  # another engineer's module: report, do not fail the benchmark
        return None, f"not measured: the transition monitor could not be set up ({type(e).__name__}: {e})"
    batch_idx = iter(range(10**9))

    device = next(net.parameters()).device

    def update(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        _sync(device)
        t0 = time.perf_counter()
        monitor.on_train_batch_end(trainer, module, None, batch, next(batch_idx))
        _sync(device)
        update.times.append(time.perf_counter() - t0)  # type: ignore[attr-defined]

    update.times = []  # type: ignore[attr-defined]
    return update, "measured"


def kept_levels_copy_ms(net: nn.Module, repeats: int = 5) -> float:
    """What the forward pays for the monitor besides its hooks: the int8 copy of every device layer's
    weight levels (SpikingConv.keep_levels), median of `repeats`, ms."""
    from quest.snn.quantizer import mint_levels_into

    layers = [blk for _, blk in net.device_layers() if blk.quantized]
    floats = [mint_levels_into(b.conv.weight.detach(), b.quantizer.scale().detach(), b.quantizer.q_max,
                               torch.empty_like(b.conv.weight)) for b in layers]
    device = floats[0].device if floats else torch.device("cpu")
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for f in floats:
            torch.empty(f.shape, dtype=torch.int8, device=f.device).copy_(f)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# ---------------------------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------------------------
def data_throughput(batch_size: int, device: torch.device, seconds: float = 2.0) -> dict[str, Any]:
    """images/s of TensorBatchLoader + random_crop(4) + random_flip + normalize on the bundled subset."""
    from quest.data.augment import normalize, random_crop, random_flip
    from quest.data.loader import TensorBatchLoader
    from quest.data.sources import BUNDLED_SUBSET, load_npz

    arrays = load_npz(BUNDLED_SUBSET, 10)
    x, y = arrays.x_train.to(device), arrays.y_train.to(device)
    loader = TensorBatchLoader(x, y, batch_size, shuffle=True, drop_last=True)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    images, epochs = 0, 0
    _sync(device)
    start = time.perf_counter()
    while True:
        for xb, yb in loader:
            xb = normalize(random_flip(random_crop(xb, 4)), mean, std)
            images += xb.shape[0]
        epochs += 1
        _sync(device)
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": images / elapsed,
        "images": images,
        "epochs": epochs,
        "train_images": len(x),
        "batch_size": batch_size,
    }


def optimizer_step(args: argparse.Namespace, device: torch.device, steps: int = 15) -> dict[str, Any]:
    """Median ms of one Adam step (lr 1e-3, wd 1e-4) over QUEST's parameters with fixed gradients:
    torch's default (foreach; what every variant's step uses) and fused (what QuestModule uses)."""
    params = list(build("quest", args, device).parameters())
    generator = torch.Generator(device="cpu").manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator).to(device)
    result: dict[str, Any] = {"parameters": sum(p.numel() for p in params)}
    for name, kwargs in (("foreach", {}), ("fused", {"fused": True})):
        opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4, **kwargs)
        times = []
        for i in range(steps + 3):
            _sync(device)
            t0 = time.perf_counter()
            opt.step()
            _sync(device)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        result[f"{name}_ms"] = statistics.median(times) * 1e3
    return result


# ---------------------------------------------------------------------------------------------
# Memory: one fresh subprocess per variant
# ---------------------------------------------------------------------------------------------
def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM of /proc/self/status. (On Linux ru_maxrss also counts the
    parent's resident set at fork time, which exec does not reset; VmHWM belongs to the new image.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_memory(args: argparse.Namespace) -> None:
    """Run in a fresh process: build one variant, run steps, print its memory as JSON."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = make_trainer(args.child, args, device)
    x, y = _inputs(args, device)
    rss_before = _current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(args.memory_steps):
        trainer.step(x, y)
    _sync(device)
    out: dict[str, Any] = {
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_steps_mib": rss_before,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["cuda_before_steps_mib"] = base / 2**20
    print("MEMORY_JSON " + json.dumps(out))


def measure_memory(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Median over --memory-repeats fresh processes (peak RSS varies by a few % run to run: heap
    fragmentation depends on thread timing), with every run's numbers kept."""
    runs = [_memory_once(name, args) for _ in range(max(1, args.memory_repeats))]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    key = "cuda_peak_mib" if "cuda_peak_mib" in ok[0] else "peak_rss_mib"
    out = {k: statistics.median(r[k] for r in ok) for k in ok[0]}
    out["runs"] = [r[key] for r in ok]
    return out


def _memory_once(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", name,
        "--batch-size", str(args.batch_size), "--device", args.device,
        "--time-steps", str(args.time_steps), "--bits", str(args.bits),
        "--memory-steps", str(args.memory_steps),
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_JSON "):
            return json.loads(line[len("MEMORY_JSON ") :])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for mod in ("spikingjelly", "snntorch"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod)
        except Exception:
            info[mod] = None
    return info


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.variants if available(n)]
    skipped = {n: f"{PEERS[n]} not installed (pip install -e '.[bench]')" for n in args.variants if not available(n)}
    for n, why in skipped.items():
        print(f"skipping {n}: {why}")
    x, y = _inputs(args, device)
    trainers = {n: make_trainer(n, args, device) for n in names}

    # The monitored QUEST step: the same network plus a transition-monitor update after every step.
    monitor_status = "not measured: skipped (--no-monitor)"
    monitor_updates: list[float] = []  # seconds of each monitor update (warm-up included)
    if "quest" in trainers and not args.no_monitor:
        tr = make_trainer("quest", args, device)
        hook, monitor_status = monitor_hook(tr.net)
        if hook is not None:
            tr.name, tr.after_step = "quest+monitor", hook
            trainers["quest+monitor"] = tr
            monitor_updates = hook.times  # type: ignore[attr-defined]

    load_start = _load()
    for _ in range(args.warmup):
        for tr in trainers.values():
            tr.step(x, y)
    times: dict[str, list[float]] = {n: [] for n in trainers}
    order = list(trainers)
    for i in range(args.steps):
        rot = order[i % len(order) :] + order[: i % len(order)]
        for n in rot:
            _sync(device)
            t0 = time.perf_counter()
            trainers[n].step(x, y)
            _sync(device)
            times[n].append(time.perf_counter() - t0)
        print(f"round {i + 1}/{args.steps}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.0f} ms" for n in rot), flush=True)
    load_end = _load()
    copy_ms = kept_levels_copy_ms(trainers["quest+monitor"].net) if "quest+monitor" in trainers else 0.0
    del trainers

    memory = {n: measure_memory(n, args) for n in names} if not args.no_memory else {}
    data = data_throughput(args.batch_size, device) if not args.no_data else None
    adam = optimizer_step(args, device) if not args.no_optimizer else None

    results: dict[str, Any] = {}
    for n, ts in times.items():
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [med, med, med]
        results[n] = {
            "median_ms": med * 1e3,
            "q1_ms": q[0] * 1e3,
            "q3_ms": q[2] * 1e3,
            "images_per_s": args.batch_size / med,
            "times_ms": [t * 1e3 for t in ts],
        }
        if "floor" in times:
            results[n]["time_over_floor"] = paired_ratio(ts, times["floor"])
        if "floor-bf16" in times:
            results[n]["time_over_floor_bf16"] = paired_ratio(ts, times["floor-bf16"])
        if "spikingjelly-bf16" in times:
            results[n]["time_over_spikingjelly_bf16"] = paired_ratio(ts, times["spikingjelly-bf16"])
        if "quest" in times:
            results[n]["quest_time_over_this"] = paired_ratio(times["quest"], ts)
        if "quest-bf16" in times:
            results[n]["quest_bf16_time_over_this"] = paired_ratio(times["quest-bf16"], ts)
        if n in memory:
            results[n]["memory"] = memory[n]
    monitor: dict[str, Any] = {"status": monitor_status}
    if "quest+monitor" in results:
        monitor["overhead_pct"] = 100.0 * (paired_ratio(times["quest+monitor"], times["quest"]) - 1.0)
        # the update itself, timed inside the monitored step (far less noisy than the difference of two
        # steps): the median of its hooks over the timed steps plus the forward's copy of the kept levels,
        # against the median QUEST step
        hooks_ms = statistics.median(monitor_updates[-args.steps :]) * 1e3
        update_ms = hooks_ms + copy_ms
        monitor.update(hooks_ms=hooks_ms, kept_levels_copy_ms=copy_ms, update_ms=update_ms)
        monitor["update_pct_of_step"] = 100.0 * update_ms / (statistics.median(times["quest"]) * 1e3)
        if "quest-bf16" in times:  # the same update against the bf16-mixed step
            monitor["update_pct_of_bf16_step"] = 100.0 * update_ms / (statistics.median(times["quest-bf16"]) * 1e3)
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(device),
        "load_average": {"start": load_start, "end": load_end},
        "config": {
            "batch_size": args.batch_size, "time_steps": args.time_steps, "bits": args.bits,
            "steps": args.steps, "warmup": args.warmup, "threads": args.threads or torch.get_num_threads(),
            "memory_steps": args.memory_steps, "memory_repeats": args.memory_repeats,
        },  # fmt: skip
        "skipped": skipped,
        "results": results,
        "monitor": monitor,
        "data_pipeline": data,
        "optimizer_step": adam,
    }


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i] / b[i] (both timed in the same round)."""
    return statistics.median(x / y for x, y in zip(a, b))


def _peak(r: dict[str, Any], device: str) -> float | None:
    mem = r.get("memory") or {}
    return mem.get("cuda_peak_mib" if device.startswith("cuda") else "peak_rss_mib")


def markdown(report: dict[str, Any]) -> str:
    res, dev = report["results"], report["machine"]["device"]
    mem_label = "peak CUDA memory (MiB)" if dev.startswith("cuda") else "peak RSS (MiB)"
    floor = res.get("floor")
    quest = res.get("quest")
    lines = [
        f"| variant | median step (ms) | images/s | {mem_label} | time / floor | memory / floor "
        "| QUEST time / this | QUEST memory / this |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a and b else "-"

    def fmt(x: float | None) -> str:
        return f"{x:.2f}x" if x else "-"

    for n in [*VARIANTS, "quest+monitor"]:
        if n not in res:
            continue
        r = res[n]
        pk = _peak(r, dev)
        lines.append(
            f"| {n} | {r['median_ms']:.0f} | {r['images_per_s']:.1f} | {f'{pk:.0f}' if pk else '-'} "
            f"| {fmt(r.get('time_over_floor'))} | {ratio(pk, floor and _peak(floor, dev))} "
            f"| {fmt(r.get('quest_time_over_this')) if n != 'quest' else '-'} "
            f"| {ratio(quest and _peak(quest, dev), pk) if n != 'quest' else '-'} |"
        )
    mixed = res.get("quest-bf16")
    if mixed:  # QUEST under bf16 autocast against every other variant
        lines += [
            "",
            "QUEST with trainer.precision=bf16-mixed (quest-bf16) against each variant:",
            "",
            "| variant | quest-bf16 time / this | quest-bf16 memory / this | this time / floor-bf16 "
            "| this time / spikingjelly-bf16 |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for n in [*VARIANTS, "quest+monitor"]:
            if n in res:
                pk = _peak(res[n], dev)
                own = n == "quest-bf16"
                lines.append(
                    f"| {n} | {'-' if own else fmt(res[n].get('quest_bf16_time_over_this'))} "
                    f"| {'-' if own else ratio(_peak(mixed, dev), pk)} | {fmt(res[n].get('time_over_floor_bf16'))} "
                    f"| {fmt(res[n].get('time_over_spikingjelly_bf16'))} |"
                )
    m, c = report["machine"], report["config"]
    mem_note = (
        "torch.cuda.max_memory_allocated in a fresh process per variant"
        if dev.startswith("cuda")
        else "peak RSS (VmHWM) of a fresh process per variant, imports included"
    ) + (
        f", median of {report['config']['memory_repeats']} processes"
        if report["config"].get("memory_repeats", 1) > 1
        else ""
    )
    extra = [
        "",
        f"Batch {c['batch_size']}, T = {c['time_steps']}, QUEST at {c['bits']}-bit; median of {c['steps']} "
        f"interleaved steps after {c['warmup']} warm-up steps; time ratios are medians of per-round ratios; "
        f"{c['threads']} torch thread(s); load average {report['load_average']['start']} -> "
        f"{report['load_average']['end']}. Memory: {mem_note}.",
        f"Machine: {m['cpu']}, {m['cpu_cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''}; "
        f"torch {m['torch']}, spikingjelly {m['spikingjelly']}, snntorch {m['snntorch']}.",
    ]
    mon = report["monitor"]
    if "overhead_pct" in mon:
        extra.append(
            f"Energy monitors (transition monitor updated after every step): {mon['overhead_pct']:+.1f}% of the step "
            f"(difference of the monitored and the plain step); the update itself {mon['update_ms']:.1f} ms, "
            f"{mon['update_pct_of_step']:.1f}% of the median QUEST step"
            + (f", {mon['update_pct_of_bf16_step']:.1f}% of the bf16-mixed one." if "update_pct_of_bf16_step" in mon else ".")
        )
    else:
        extra.append(f"Energy monitors: {mon['status']}.")
    d = report.get("data_pipeline")
    if d:
        extra.append(
            f"Data pipeline alone (TensorBatchLoader + random_crop + random_flip + normalize, bundled subset, "
            f"batch {d['batch_size']}): {d['images_per_s']:.0f} images/s."
        )
    a = report.get("optimizer_step")
    if a:
        extra.append(
            f"Adam step alone over QUEST's {a['parameters'] / 1e6:.1f}M parameters: {a['foreach_ms']:.1f} ms with "
            f"torch's default (foreach; every variant above), {a['fused_ms']:.1f} ms fused (QUEST's training)."
        )
    for n, why in report["skipped"].items():
        extra.append(f"Skipped {n}: {why}.")
    return "\n".join(lines + extra) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default 16 on CPU, 128 on GPU")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--bits", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--memory-steps", type=int, default=3, help="steps run by each memory subprocess")
    p.add_argument("--memory-repeats", type=int, default=3, help="memory subprocesses per variant (median)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant memory subprocesses")
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline throughput")
    p.add_argument("--no-monitor", action="store_true", help="skip the monitored QUEST step")
    p.add_argument("--no-optimizer", action="store_true", help="skip the foreach vs fused Adam timing")
    p.add_argument("--out", default=None, help="write the report to PATH (.json) and its table to PATH with .md")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 128 if args.device.startswith("cuda") else 16
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_memory(args)
        return
    publish(run(args), markdown, args.out)


def publish(report: dict[str, Any], to_markdown: Callable[[dict[str, Any]], str], out: str | None) -> None:
    """Print the report's table; with `out`, write PATH.json (the report) and PATH.md (the table)."""
    table = to_markdown(report)
    print()
    print(table)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(table)
        print(f"wrote {path.with_suffix('.json')} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
