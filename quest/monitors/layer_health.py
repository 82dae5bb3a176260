"""Layer health: is each spiking layer alive, and is its membrane pinned at the quantizer's clamp?

Per spiking layer l (the encoding layer and every device layer), over the measured batches:

    spike_rate_per_step  = spikes / (T * samples * neurons)       (per neuron per time step)
    silent_fraction      = share of the layer's neurons (channel x position) that never spike,
                           over all T steps and all measured samples
    saturation_share     = share of membrane updates U'_t (t < T-1, the ones carried to the next
                           step) with |tanh U'_t| >= alpha, i.e. clamped to +-alpha by the MINT
                           quantizer (REFERENCE.md section 5), where dq/dU' = 0
    alpha, alpha_over_theta = the layer's shared scale, and the largest membrane it can carry
                           (alpha) as a fraction of the threshold theta

The measured batches run through the network once, under no_grad (training is not touched): each
spiking layer runs the fused backend's forward scan, which keeps H_t (the reference neuron's values
bit for bit, quest/snn/neurons.py), and its carried membrane U'_t is recomputed from H_t and S_t.
`LayerHealthMonitor` records these at initialisation (on the first training batch, with the weights
the first update starts from) and at every validation epoch, logs them as `health/<layer>/<key>`
and writes the history to `layer_health.json` in the run folder.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from torch import nn

from quest.results import write_json_atomic
from quest.snn.layers import SpikingConv
from quest.snn.scan import ScanSpec, membrane_reset, scan_forward

HEALTH_FILE = "layer_health.json"
SCHEMA = "quest.layer_health/1"
UNITS = {
    "spike_rate_per_step": "spikes per neuron per time step (summed over T, divided by T)",
    "silent_fraction": "fraction of neurons (channel x position) with no spike over all T and measured samples",
    "saturation_share": "fraction of carried membrane values U'_t (t < T-1) with |tanh U'| >= alpha (clamped)",
    "alpha": "the layer's shared MINT scale (weights and membrane)",
    "alpha_over_theta": "alpha / theta: the largest membrane potential the layer carries, relative to its threshold",
}


class _Tally:
    """Running sums of one layer's health over the measured batches."""

    def __init__(self) -> None:
        self.spikes_per_neuron: torch.Tensor | None = None  # [C, H, W] spikes summed over T and samples
        self.samples = 0
        self.steps = 0
        self.clamped = 0
        self.carried = 0

    def add(self, per_neuron: torch.Tensor, samples: int, steps: int, clamped: int, carried: int) -> None:
        """per_neuron [C, H, W]: spikes summed over T and the batch; clamped/carried: counts of clamped
        and of all carried membrane values."""
        per_neuron = per_neuron.double()
        self.spikes_per_neuron = per_neuron if self.spikes_per_neuron is None else self.spikes_per_neuron + per_neuron
        self.samples += samples
        self.steps = steps
        self.clamped += clamped
        self.carried += carried

    def result(self, layer: SpikingConv) -> dict[str, Any]:
        counts = self.spikes_per_neuron
        neurons = counts.numel() if counts is not None else 0
        total = float(counts.sum()) if counts is not None else 0.0
        q = layer.quantizer
        alpha = float(q.scale()) if q is not None else None
        return {
            "spike_rate_per_step": total / (self.steps * self.samples * neurons) if neurons else None,
            "silent_fraction": float((counts == 0).double().mean()) if neurons else None,
            "saturation_share": self.clamped / self.carried if (self.carried and layer.quantize_membrane) else None,
            "alpha": alpha,
            "alpha_over_theta": alpha / layer.neuron.theta if alpha is not None else None,
            "quantized": layer.quantized,
            "samples": self.samples,
        }


@torch.no_grad()
def _measured_forward(layer: SpikingConv, tally: _Tally, x: torch.Tensor, time_steps: int,
                      static: bool = False) -> torch.Tensor:
    """The layer's forward, tallying as it goes: the fused backend's forward scan
    (quest.snn.scan.scan_forward, the reference neuron bit for bit) keeps H_t and S_t, and the carried
    membrane U'_t = reset(H_t, S_t) (t < T-1) is recomputed from them to count the clamped values.
    One pass gives the health and the next layer's input."""
    current = layer.current(x, time_steps, static)
    n, q = layer.neuron, (layer.quantizer if layer.quantize_membrane else None)
    alpha = q.scale() if q is not None else None
    h = torch.empty(current.shape, dtype=torch.float32, device=current.device)
    spikes = torch.empty_like(h)
    scan_forward(current, h, spikes, alpha, ScanSpec(q.q_max if q is not None else 0, n.theta, n.leak,
                                                     n.soft_reset, n.surrogate, n.detach_reset))
    clamped = carried = 0
    if q is not None:
        for t in range(time_steps - 1):
            u_pre = membrane_reset(h[t], spikes[t], n.theta, n.leak, n.soft_reset)
            clamped += int((torch.tanh(u_pre).abs() >= alpha).sum())
            carried += u_pre.numel()
    # spike counts per neuron: integers <= T * B, exact in float32 (casting the spikes to float64 cost a pass)
    tally.add(spikes.sum((0, 1)), current.shape[1], time_steps, clamped, carried)
    spikes = spikes.to(current.dtype)
    if layer.pool is None:
        return spikes
    return layer.pool(spikes.flatten(0, 1)).unflatten(0, spikes.shape[:2])


@contextmanager
def _measuring(net: nn.Module, tallies: dict[str, _Tally]) -> Iterator[None]:
    """Every SpikingConv of `net` runs `_measured_forward` (an instance attribute shadows forward)."""
    layers = [(name, m) for name, m in net.named_modules() if isinstance(m, SpikingConv)]
    for name, module in layers:
        module.forward = partial(_measured_forward, module, tallies.setdefault(name, _Tally()))
    try:
        yield
    finally:
        for _, module in layers:
            module.__dict__.pop("forward", None)


def layer_names(net: nn.Module) -> dict[str, str]:
    """Module path -> display name (conv1, conv2, ... from SpikingVGG.block_names when present)."""
    names = list(getattr(net, "block_names", []))
    paths = [n for n, m in net.named_modules() if isinstance(m, SpikingConv)]
    return {p: (names[i] if i < len(names) else p) for i, p in enumerate(paths)}


@torch.no_grad()
def measure_health(net: nn.Module, batches: list[torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Health of every spiking layer of `net` over the (normalised) image batches, in eval mode."""
    was_training = net.training
    net.eval()
    tallies: dict[str, _Tally] = {}
    try:
        with _measuring(net, tallies):
            for x in batches:
                net(x)
    finally:
        net.train(was_training)
    modules = dict(net.named_modules())
    names = layer_names(net)
    return {names[p]: t.result(modules[p]) for p, t in tallies.items()}


class LayerHealthMonitor(L.Callback):
    """Records layer health at initialisation and after every validation epoch (module docstring).

    num_batches: validation batches measured per epoch (the first ones; 0 switches it off).
    at_init: also measure the first training batch before the first optimizer step.
    """

    def __init__(self, num_batches: int = 2, at_init: bool = True) -> None:
        super().__init__()
        if num_batches < 0:
            raise ValueError(f"callbacks.layer_health.num_batches={num_batches!r}: must be >= 0")
        self.num_batches = num_batches
        self.at_init = at_init
        self.history: list[dict[str, Any]] = []
        self._batches: list[torch.Tensor] = []
        self._init_batch: torch.Tensor | None = None

    # -- state (so a resumed run keeps its history) ---------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))

    # -- hooks ----------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.at_init and trainer.global_step == 0 and batch_idx == 0 and not self.history:
            self._init_batch = batch[0]

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        # the weights the first update starts from (after an opt-in start calibration, if any)
        if self._init_batch is not None:
            x, self._init_batch = self._init_batch, None
            self._record(trainer, pl_module, "init", -1, measure_health(_net(pl_module), [x]))

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking and batch_idx < self.num_batches:
            self._batches.append(batch[0])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._batches:
            return
        layers = measure_health(_net(pl_module), self._batches)
        self._batches = []
        self._record(trainer, pl_module, "epoch", trainer.current_epoch, layers)

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, epoch: int, layers: dict) -> None:
        entry = {"stage": stage, "epoch": epoch, "step": trainer.global_step, "layers": layers}
        self.history = [h for h in self.history if (h["stage"], h["epoch"]) != (stage, epoch)] + [entry]
        if stage == "epoch":
            for layer, values in layers.items():
                for key in ("spike_rate_per_step", "silent_fraction", "saturation_share", "alpha"):
                    if values.get(key) is not None:
                        pl_module.log(f"health/{layer}/{key}", float(values[key]), sync_dist=False, rank_zero_only=True)
        if trainer.is_global_zero:
            write_json_atomic(
                Path(trainer.default_root_dir) / HEALTH_FILE,
                {"schema": SCHEMA, "units": UNITS, "history": self.history},
            )


def _net(pl_module: L.LightningModule) -> nn.Module:
    return getattr(pl_module, "net", pl_module)
