"""Spike rate, weight sparsity, AOR and read energy (Algorithm 2, REFERENCE.md section 9).

Measured on the first `num_batches` validation batches of every epoch. For device layer l:

    spike rate r_l   = spikes over all T / (samples * neurons per sample)
    weight sparsity  = fraction of zero integer weights
    AOR_l            = effective ops / all ops, an op = one (input position, weight) pair of the
                       layer's MACs at one step, effective when the input spike is 1 and w != 0
    read energy      = sum over levels w != 0 of N_l(weight = w, spike = 1) * E_read(state(w))

N_l(w) without materialising any op: with A[c, i, j] = the number of (sample, step, output
position) whose receptive-field input at channel c, kernel offset (i, j) is a spike (one unfold of
the batch- and time-summed input), N_l(w) = sum_{c,i,j} A[c,i,j] * #{output channels o :
W[o,c,i,j] = w}. Padding positions are never spikes, so they count as ops but never as effective.

CMOS comparison (DIET-SNN method, 45 nm): E_ANN = sum_l FLOPs_l E_MAC; E_SNN = encoding conv at
E_MAC (once: the image is the same at every step) + sum of spiking-input layers FLOPs_l r_in,l E_AC
(+ non-spiking head layers at E_MAC on every step).

Counts are summed across processes (DDP) before any rate or energy is computed.
"""
from __future__ import annotations

from typing import Any, Mapping

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from quest.device.mapping import DeviceMapping
from quest.energy.cmos import E_AC_pJ, E_MAC_pJ, cmos_energy_pJ, conv_flops, linear_flops
from quest.monitors.energy_file import history_from_state, history_to_state, log_wandb_table, update_energy_file
from quest.snn.layers import SpikingConv


def ops_per_level(
    spikes_in: torch.Tensor, level_index: torch.Tensor, num_levels: int, stride: int, padding: int
) -> torch.Tensor:
    """N[l]: (input spike = 1, weight at level index l) pairs, l in 0..num_levels-1.

    spikes_in [T, B, C, H, W]; level_index [C_out, C, k, k] (e.g. level + Q).
    """
    k = level_index.shape[-1]
    summed = spikes_in.sum(dim=(0, 1), dtype=torch.float64).unsqueeze(0)  # [1, C, H, W]
    a = F.unfold(summed, k, padding=padding, stride=stride).sum(-1).squeeze(0)  # [C*k*k]
    one_hot = F.one_hot(level_index.long(), num_levels).sum(0)  # [C, k, k, L]
    return a @ one_hot.flatten(0, 2).to(torch.float64)


def level_index(layer: SpikingConv) -> tuple[torch.Tensor, int, int]:
    """(index of each weight's level, number of levels, index of the zero level).

    Quantized layers: level + Q over 2Q+1 levels; full precision: 0 = zero weight, 1 = non-zero.
    """
    if layer.quantized:
        q = layer.quantizer.q_max
        return layer.weight_levels().long() + q, layer.quantizer.num_levels, q
    return (layer.conv.weight != 0).long(), 2, 0


def _count(x: torch.Tensor) -> float:
    """sum(x) accumulated and returned in float64 (spikes come in bf16 under mixed precision, whose
    own sum would round a count of millions to 3 significant digits)."""
    return float(x.sum(dtype=torch.float64))


def total_ops(spikes_in: torch.Tensor, layer: SpikingConv, out_shape: torch.Size) -> float:
    """All (input position, weight) pairs over the batch and T: T * B * FLOPs per sample-step."""
    t, b = spikes_in.shape[:2]
    c = layer.conv
    return float(t * b * conv_flops(c.kernel_size[0], c.in_channels, c.out_channels, out_shape[-2], out_shape[-1]))


class ActivityMonitor(L.Callback):
    """Per-epoch spike rate, sparsity, AOR, read energy and the CMOS comparison."""

    def __init__(
        self,
        mapping: DeviceMapping,
        num_batches: int = 4,
        count_zero_reads: bool = False,
    ) -> None:
        if num_batches < 1:
            raise ValueError(f"callbacks.activity_monitor.num_batches={num_batches}: must be >= 1")
        self.mapping = mapping
        self.num_batches = num_batches
        self.count_zero_reads = count_zero_reads
        self.stats: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self._handles: list[Any] = []

    # -- observing -----------------------------------------------------------------------------
    def _observer(self, name: str):
        @torch.no_grad()
        def observe(layer: SpikingConv, x: torch.Tensor, spikes: torch.Tensor) -> None:
            if x.dim() == 4:  # static input (direct encoding): not spikes, no AOR
                x = x.unsqueeze(0)
            t, b = x.shape[:2]
            index, num_levels, _ = level_index(layer)
            n_levels = ops_per_level(x, index, num_levels, layer.conv.stride[0], layer.conv.padding[0])
            row = torch.cat([
                torch.tensor(
                    [float(b), _count(spikes), _count(x), total_ops(x, layer, spikes.shape)],
                    dtype=torch.float64, device=x.device,
                ),
                n_levels,
            ])
            self.stats[name] = row if name not in self.stats else self.stats[name] + row
            self.shapes[name] = {
                "t": t,
                "neurons": spikes[0, 0].numel(),
                "inputs": x[0, 0].numel(),
                "weights": layer.conv.weight.numel(),
                "flops": conv_flops(layer.conv.kernel_size[0], layer.conv.in_channels, layer.conv.out_channels, spikes.shape[-2], spikes.shape[-1]),
            }

        return observe

    def _head_hook(self, name: str, linear: torch.nn.Linear):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = args[0]
            row = torch.tensor([_count(x), float(x.shape[0])], dtype=torch.float64, device=x.device)
            self.stats[name] = row if name not in self.stats else self.stats[name] + row
            self.shapes[name] = {"flops": linear_flops(linear.in_features, linear.out_features), "inputs": linear.in_features}

        return hook

    def _attach(self, net: Any) -> None:
        for name, blk in zip(net.block_names, net.blocks):
            blk.observer = self._observer(name)
        for i, lin in enumerate(m for m in net.head if isinstance(m, torch.nn.Linear)):
            self._handles.append(lin.register_forward_hook(self._head_hook(f"fc{i + 1}", lin)))

    def _detach(self, net: Any) -> None:
        for blk in net.blocks:
            blk.observer = None
        for h in self._handles:
            h.remove()
        self._handles = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stats, self.shapes = {}, {}

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx < self.num_batches and not trainer.sanity_checking:
            self._attach(pl_module.net)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._detach(pl_module.net)

    # -- checkpoint: a resumed run continues the same history --------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": history_to_state(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = history_from_state(state.get("history"))

    # -- reporting -----------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.stats:
            return
        names = sorted(self.stats)
        reduced = {n: trainer.strategy.reduce(self.stats[n].clone(), reduce_op="sum") for n in names}
        stats = {n: v.cpu().numpy() for n, v in reduced.items()}
        epoch = self.report(stats, pl_module.net, trainer.current_epoch)
        self.history.append(epoch)
        metrics = {"energy/cmos_ann_over_snn": epoch["cmos"]["ann_over_snn"]}
        for name, rep in epoch["layers"].items():
            for key in ("spike_rate", "weight_sparsity", "aor"):
                metrics[f"activity/{name}/{key}"] = rep[key]
            sel = epoch.get("selected_pattern")
            if isinstance(rep.get("read_energy_per_sample_fJ"), dict) and sel is not None:
                metrics[f"read/{name}/per_sample_fJ"] = rep["read_energy_per_sample_fJ"][str(sel)]
        pl_module.log_dict(metrics, sync_dist=True)  # equal on every rank: weights are replicas, counts were reduced
        sel = epoch.get("selected_pattern")
        rows = [
            [name, trainer.current_epoch, rep["spike_rate"], rep["weight_sparsity"], rep["aor"],
             rep["read_energy_per_sample_fJ"][str(sel)] if isinstance(rep["read_energy_per_sample_fJ"], dict) and sel else None]
            for name, rep in epoch["layers"].items()
        ]
        log_wandb_table(trainer, "activity_by_layer",
                        ["layer", "epoch", "spike_rate", "weight_sparsity", "aor", "read_energy_per_sample_fJ"], rows)
        update_energy_file(trainer, "activity", {"num_batches": self.num_batches, "epochs": self.history}, self.mapping)

    def _read_energies(self, out: dict[str, Any], level_ops: Mapping[str, np.ndarray]) -> None:
        """Read energy per sample of every layer under every pattern (the mapping's formula)."""
        names = list(level_ops)
        energy = self.mapping.read_energies(np.stack([level_ops[n] for n in names]), self.count_zero_reads)  # [L, P]
        totals = energy.sum(0)
        chosen = self.mapping.select(read_totals=totals)
        patterns = self.mapping.patterns
        listed = self.mapping.listed(totals, chosen)
        for li, n in enumerate(names):
            out["layers"][n]["read_energy_per_sample_fJ"] = {
                str(patterns[p].number): float(energy[li, p]) for p in listed
            }
        out["read_energy_per_sample_fJ_by_pattern"] = {str(patterns[p].number): float(totals[p]) for p in listed}
        out["least_read_energy_pattern"] = int(self.mapping.cheapest(totals))
        out["selected_pattern"] = chosen

    def report(self, stats: Mapping[str, np.ndarray], net: Any, epoch: int) -> dict[str, Any]:
        """Rates, AOR, read energies and CMOS figures from summed counts."""
        layers: dict[str, Any] = {}
        device_layers = dict(net.device_layers())
        cmos_layers: list[tuple[str, float, float | None, int]] = []
        level_ops: dict[str, np.ndarray] = {}
        time_steps = net.time_steps
        for name in net.block_names:
            if name not in stats:
                continue
            row, shp = stats[name], self.shapes[name]
            samples, spikes, spikes_in, ops = row[:4]
            n_levels = row[4:]
            rate_in = spikes_in / (samples * shp["inputs"])
            first = name == net.block_names[0]
            static = first and net.encoder.is_static
            cmos_layers.append((name, shp["flops"], None if static else rate_in, 1))
            if name not in device_layers:
                continue
            index, _, zero_index = level_index(device_layers[name])
            effective = float(n_levels.sum() - n_levels[zero_index])
            rep: dict[str, Any] = {
                "spike_rate": spikes / (samples * shp["neurons"]),
                "input_spike_rate": rate_in,
                "weight_sparsity": float((index == zero_index).double().mean()),
                "aor": effective / ops if ops else 0.0,
                "effective_ops_per_sample": effective / samples,
                "total_ops_per_sample": ops / samples,
                "neurons_per_sample_step": shp["neurons"],
                "flops_per_sample_step": shp["flops"],
            }
            levels = self.mapping.levels
            if levels and len(n_levels) == len(levels):
                rep["effective_ops_per_sample_by_level"] = {
                    str(lv): n_levels[i] / samples for i, lv in enumerate(levels)
                }
                level_ops[name] = n_levels / samples
            rep["read_energy_per_sample_fJ"] = (
                "no pattern evaluated" if self.mapping.synapse else self.mapping.synapse_not_realizable
            )
            layers[name] = rep
        # head: the first linear reads pooled spikes, later ones real values (MACs at every step)
        for i, name in enumerate(sorted(n for n in stats if n.startswith("fc"))):
            total, rows = stats[name]
            shp = self.shapes[name]
            samples = rows / time_steps
            rate = total / (samples * shp["inputs"]) if i == 0 else None
            cmos_layers.append((name, shp["flops"], rate, time_steps))
        cmos = cmos_energy_pJ([(f, r, m) for _, f, r, m in cmos_layers])
        out: dict[str, Any] = {
            "epoch": epoch,
            "samples": float(next(iter(stats.values()))[0]) if stats else 0.0,
            "layers": layers,
            "cmos": {
                "e_mac_pJ": E_MAC_pJ,
                "e_ac_pJ": E_AC_pJ,
                "ann_pJ": cmos.ann_pJ,
                "snn_pJ": cmos.snn_pJ,
                "ann_over_snn": cmos.ratio,
                "layers": [
                    {"name": n, "flops": f, "input_spike_rate": r, "mac_steps": None if r is not None else m}
                    for n, f, r, m in cmos_layers
                ],
            },
        }
        if self.mapping.synapse and self.mapping.patterns and layers and len(level_ops) == len(layers):
            self._read_energies(out, level_ops)
        else:
            out["selected_pattern"] = self.mapping.select()
        return out
