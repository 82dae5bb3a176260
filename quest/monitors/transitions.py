"""Weight-state transitions and write energy (Algorithm 1, REFERENCE.md section 8).

After every optimizer step each quantized layer's integer weight levels (the state matrix) are
compared with those of the previous step, and the transition count matrix C (level i -> j) is
accumulated, for every weight, in one bincount per layer. Per layer and pattern p:

    P_ij = C_ij / sum(C),   E = sum_ij P_ij * E_p[i][j]  (fJ per weight per update)
    per batch = E * n_weights,   per sample = per batch / batch size

Counted per epoch, and in QUEST's windows of batches (early 0-9, middle 95-104, final 180-189
of the first epoch) to reproduce its figures; `subset: quest` restricts the count to QUEST's
sampled weights (output and input channels below a quarter, kernel positions {0,2}x{0,2}).

With hardware-aware training (quest.device.hardware_aware, opt-in) the counts are of the cells'
actual moves. Writes follow THE WRITE RULE of quest-eval (quest.device.chip.write_cells): hop by hop
along the RSTD's cheapest path, each hop failing with its p_fail (every hop of a stuck cell fails),
retried up to `max_attempts` with write-verify, every attempt charged at the hop's E; a hop that
still fails ends the write with the cell in the state it reached. So a cell written from level i that stopped in state u_k is counted i -> level(u_k) (i -> i
when its first hop failed), and that count's charge C[state(i)][state(level(u_k))] is the energy of
its successful hops, C[u_0][u_k] (sub-paths of cheapest paths are cheapest), whenever u_0 and u_k
hold levels. Recorded beside each layer (`failed_writes`) and in total (`nonideal`), per epoch and
per window, under the training pattern:

    failed_energy_fJ     the failed attempts (every attempt of a failed hop, and a successful hop's retries)
    off_level_energy_fJ  sum over cells of C[u_0][u_k] - C[state(level(u_0))][state(level(u_k))]: what the
                         level count misses (or over-counts) for a cell starting or stopping in a state
                         that holds no level (it reads as level 0); 0 on a card whose states all hold levels
    per weight update = energy / sum(C);  per batch = that * n_weights;  per sample = / batch size

so the pattern's write energy plus both is the energy of every attempt.

Without hardware-aware training the levels after a step are those that the next step's forward
computes anyway (the layers keep them, `SpikingConv.keep_levels`): at the end of batch k the monitor
counts step k-1's transition from the levels batch k's forward kept (the weights before step k), and
leaves step k's pending until the next batch, or computes its levels at the end of the epoch, at a
validation, before a checkpoint and at the end of training (no step has happened since). The counts
equal counting right after every step (tested).

Under data-parallel training every process holds the same weights after each step, so counts
are taken from the local replica (rank 0 writes them); summing across processes would count
each transition once per process.
"""
from __future__ import annotations

from typing import Any, Mapping

import lightning as L
import numpy as np
import torch

from quest.device.hardware_aware import HardwareAwareTraining, hardware_aware
from quest.device.mapping import DeviceMapping
from quest.energy.write import non_adjacent_share
from quest.levels import levels_up_to
from quest.monitors.energy_file import history_from_state, history_to_state, log_wandb_table, update_energy_file

QUEST_WINDOWS = {"early": [0, 10], "middle": [95, 105], "final": [180, 190]}
SUBSETS = ("all", "quest")
FAILED_KEYS = ("write_attempts", "moves", "failed_moves", "failed_energy_fJ", "off_level_energy_fJ")


def quest_subset(levels: torch.Tensor) -> torch.Tensor:
    """QUEST's sampled weights: out/in channels below a quarter, kernel positions {0,2}x{0,2}."""
    c_out, c_in = levels.shape[:2]
    sub = levels[: max(1, c_out // 4), : max(1, c_in // 4)]
    return sub[:, :, [0, 2]][:, :, :, [0, 2]] if levels.dim() == 4 and levels.shape[-1] >= 3 else sub


def transition_counts(prev: torch.Tensor, cur: torch.Tensor, q_max: int) -> torch.Tensor:
    """C[i, j] = #weights at level i before and level j after (levels -Q..Q -> index 0..2Q).

    The pair index (i + Q) k + (j + Q) < k^2 <= 225 is formed in uint8, on the levels' two's-complement
    bytes: unsigned arithmetic wraps modulo 256, so i + Q and the index come out exact (the int16 form took
    ~3x longer on CPU for the same counts, the int64 form ~10x)."""
    k = levels_up_to(q_max)
    prev_u8, cur_u8 = (t.to(torch.int8).view(torch.uint8) for t in (prev, cur))
    idx = prev_u8.add(q_max).mul_(k).add_(cur_u8).add_(q_max)
    return torch.bincount(idx.flatten(), minlength=k * k).view(k, k)


class TransitionMonitor(L.Callback):
    """Counts weight-level transitions after every optimizer step; reports write energy."""

    def __init__(
        self,
        mapping: DeviceMapping,
        subset: str = "all",
        windows: Mapping[str, list[int]] | None = None,
        window_epoch: int = 0,
        log_per_pattern: bool = True,
    ) -> None:
        if subset not in SUBSETS:
            raise ValueError(f"callbacks.transition_monitor.subset={subset!r}: allowed {list(SUBSETS)}")
        self.mapping = mapping
        self.subset = subset
        self.windows = {k: list(v) for k, v in (windows or {}).items()}
        self.window_epoch = window_epoch
        self.log_per_pattern = log_per_pattern
        self.layers: list[tuple[str, Any]] = []
        self.prev: dict[str, torch.Tensor] = {}
        self._restored_prev: dict[str, torch.Tensor] = {}
        self.epoch_counts: dict[str, torch.Tensor] = {}
        self.window_counts: dict[str, dict[str, torch.Tensor]] = {}
        self.history: list[dict[str, Any]] = []
        self.batch_size = 0
        self.hardware: HardwareAwareTraining | None = None
        self.epoch_failed: dict[str, dict[str, float]] = {}
        self.window_failed: dict[str, dict[str, dict[str, float]]] = {}  # window -> layer -> FAILED_KEYS
        self._failed_step: int | None = None  # the optimizer step whose failed writes were counted
        self._pending: dict[str, list[str]] = {}  # layer -> the windows of its step not yet counted

    # -- counting ------------------------------------------------------------------------------
    def _subset(self, levels: torch.Tensor) -> torch.Tensor:
        return quest_subset(levels) if self.subset == "quest" else levels

    def _levels(self, layer: Any) -> torch.Tensor:
        return self._subset(layer.weight_levels())

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self.layers = [(n, blk) for n, blk in net.device_layers() if blk.quantized] if self.mapping.bits else []
        self.hardware = hardware_aware(trainer)
        chip = self.hardware.setup_chip(pl_module) if self.hardware is not None else None
        restored, self._restored_prev = self._restored_prev, {}  # a resumed run compares with its last step

        def held(name: str, blk: Any) -> torch.Tensor:  # what the cells hold: the chip's states, else the levels
            return self._subset(chip.levels(name)) if chip is not None else self._levels(blk)

        self.prev = {n: restored[n].to(blk.conv.weight.device) if n in restored else held(n, blk) for n, blk in self.layers}
        self._pending = {}
        for _, blk in self.layers:  # the forward keeps the levels it computes (module docstring)
            blk.keep_levels, blk.kept_levels = self.hardware is None, None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._count_pending()
        for _, blk in self.layers:
            blk.keep_levels, blk.kept_levels = False, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_counts = {}
        self.epoch_failed = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.layers:
            return
        self.batch_size = len(batch[1])
        in_window = [
            w for w, (lo, hi) in self.windows.items()
            if trainer.current_epoch == self.window_epoch and lo <= batch_idx < hi
        ]
        if self.hardware is None:
            for name, blk in self.layers:
                kept, blk.kept_levels = blk.kept_levels, None  # this batch's forward: the levels before this step
                if kept is None:  # the forward did not keep them (no forward through weight()): count now
                    self._count_pending(name)
                    self._count(name, self._levels(blk), in_window)
                    continue
                if name in self._pending:  # the last step's transition, from the levels after it
                    self._count(name, self._subset(kept), self._pending.pop(name))
                self._pending[name] = in_window
            return
        writes = self.hardware.after_step(trainer.global_step)
        fresh = self._failed_step != trainer.global_step  # a step's writes are charged once (gradient accumulation)
        self._failed_step = trainer.global_step
        for name, blk in self.layers:
            if name in writes:  # hardware-aware: the cells' actual levels, and the failed attempts
                done = writes[name]
                cur = self._subset(done.after)
                # attempts and moves of all the layer's cells; the energy of the tracked ones
                step = dict(zip(FAILED_KEYS, (done.attempts, done.moves, done.failed_moves,
                                              float(self._subset(done.failed_energy_fJ).sum()),
                                              float(self._subset(done.off_level_energy_fJ).sum()))))
                for acc_f in (self.epoch_failed, *(self.window_failed.setdefault(w, {}) for w in in_window)):
                    layer_f = acc_f.setdefault(name, {})
                    for key, value in step.items():  # a checkpoint from before a key lacks it
                        layer_f[key] = layer_f.get(key, 0.0) + (value if fresh else 0)  # a step's writes count once
            else:
                cur = self._levels(blk)
            self._count(name, cur, in_window)

    def _count_pending(self, only: str | None = None) -> None:
        """Count the steps left pending (all layers, or `only`) from levels computed now: no step has
        happened since (end of an epoch or of training, a validation, a checkpoint)."""
        for name, blk in self.layers:
            if name in self._pending and only in (None, name):
                self._count(name, self._levels(blk), self._pending.pop(name))

    def _count(self, name: str, cur: torch.Tensor, in_window: list[str]) -> None:
        """Add layer `name`'s transitions prev -> cur to the epoch's and the windows' counts."""
        counts = transition_counts(self.prev[name], cur, self.layers[0][1].quantizer.q_max)
        self.prev[name] = cur
        acc = self.epoch_counts.get(name)
        self.epoch_counts[name] = counts if acc is None else acc + counts
        for w in in_window:
            wc = self.window_counts.setdefault(w, {})
            wc[name] = counts if name not in wc else wc[name] + counts

    # -- reporting -----------------------------------------------------------------------------
    def _layer_stats(self, counts: torch.Tensor, n_weights: int, tracked: int) -> dict[str, Any]:
        """Counts, change and jump shares of one layer (no energies)."""
        c = counts.cpu().numpy().astype(np.int64)
        share = non_adjacent_share(c)
        return {
            "n_weights": n_weights,
            "tracked_weights": tracked,
            "updates": int(c.sum()) // max(1, tracked),
            "transition_counts": c.tolist(),
            "changed_share": float(1 - np.trace(c) / max(1, c.sum())),
            "non_adjacent_share": share.of_all,
            "non_adjacent_share_of_changes": share.of_changes,
        }

    def _section(self, counts_by_layer: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Per-layer stats and, for every pattern at once, the mapping's write energies."""
        names = [n for n, _ in self.layers if n in counts_by_layer]
        blocks = dict(self.layers)
        layers = {
            n: self._layer_stats(counts_by_layer[n], blocks[n].conv.weight.numel(), self._levels(blocks[n]).numel())
            for n in names
        }
        section: dict[str, Any] = {"layers": layers}
        if not self.mapping.synapse or not names:
            for rep in layers.values():
                rep["write_energy"] = self.mapping.synapse_not_realizable
            return section
        counts = np.stack([np.asarray(layers[n]["transition_counts"], dtype=np.float64) for n in names])
        n_weights = np.array([layers[n]["n_weights"] for n in names], dtype=np.float64)
        energy = self.mapping.write_energies(counts, n_weights, max(1, self.batch_size))
        patterns = self.mapping.patterns
        best = self.mapping.cheapest(energy.total_per_batch_fJ)
        listed = self.mapping.listed(energy.total_per_batch_fJ, self.mapping.select(best))
        for li, n in enumerate(names):
            layers[n]["write_energy"] = {
                str(patterns[p].number): {
                    "per_weight_update_fJ": float(energy.per_weight_update_fJ[li, p]),
                    "per_batch_fJ": float(energy.per_batch_fJ[li, p]),
                    "per_sample_fJ": float(energy.per_sample_fJ[li, p]),
                }
                for p in listed
            }
        section.update(
            total_per_batch_fJ={str(patterns[p].number): float(energy.total_per_batch_fJ[p]) for p in listed},
            best_pattern=int(best),
            patterns_evaluated=len(patterns),
        )
        return section

    def selected_pattern(self, section: Mapping[str, Any]) -> int | None:
        """The headline pattern of a section: the mapping's rule applied to its cheapest pattern."""
        return self.mapping.select(section.get("best_pattern"))

    def _failed_writes(self, section: dict[str, Any], failed: Mapping[str, Mapping[str, float]]) -> None:
        """Add the failed attempts and the off-level energy of hardware-aware training (`failed`:
        layer -> FAILED_KEYS, accumulated over the section's steps) to an epoch or window section
        (see the module docstring)."""
        totals = {"failed_energy_fJ": 0.0, "off_level_energy_fJ": 0.0}
        for name, rep in section["layers"].items():
            f = failed.get(name)
            if f is None:
                continue
            updates = max(1, sum(map(sum, rep["transition_counts"])))
            block = {"write_attempts": int(f["write_attempts"]), "moves": int(f["moves"]),
                     "failed_moves": int(f["failed_moves"])}
            for key in totals:
                energy = f.get(key, 0.0)
                per_update = energy / updates
                per_sample = per_update * rep["n_weights"] / max(1, self.batch_size)
                stem = key.removesuffix("_energy_fJ")
                prefix = "" if stem == "failed" else f"{stem}_"
                block.update({key: energy, f"{prefix}per_weight_update_fJ": per_update,
                              f"{prefix}per_batch_fJ": per_update * rep["n_weights"], f"{prefix}per_sample_fJ": per_sample})
                totals[key] += per_sample
            rep["failed_writes"] = block
        section["nonideal"] = {"pattern": self.hardware.pattern if self.hardware else None,
                               "failed_write_energy_per_sample_fJ": totals["failed_energy_fJ"],
                               "off_level_write_energy_per_sample_fJ": totals["off_level_energy_fJ"]}

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Tell the mapping the least-write-energy pattern of this epoch so far, so the read energy
        measured in this validation is reported for the same pattern."""
        if trainer.sanity_checking:
            return
        self._count_pending()
        self.mapping.write_best = None
        if self.layers and self.epoch_counts and self.mapping.synapse:
            self.mapping.write_best = self._section(self.epoch_counts).get("best_pattern")

    # -- checkpoint: a resumed run continues the same history --------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._count_pending()  # a checkpoint holds every step's transition
        return {
            "prev": {n: t.cpu() for n, t in self.prev.items()},
            "epoch_counts": {n: t.cpu() for n, t in self.epoch_counts.items()},
            "window_counts": {w: {n: t.cpu() for n, t in c.items()} for w, c in self.window_counts.items()},
            "history": history_to_state(self.history),
            "batch_size": self.batch_size,
            **({"epoch_failed": self.epoch_failed} if self.epoch_failed else {}),
            **({"window_failed": self.window_failed} if self.window_failed else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored_prev = dict(state.get("prev") or {})
        self.epoch_counts = dict(state.get("epoch_counts") or {})
        self.window_counts = {w: dict(c) for w, c in (state.get("window_counts") or {}).items()}
        self.history = history_from_state(state.get("history"))
        self.batch_size = int(state.get("batch_size") or 0)
        self.epoch_failed = {n: dict(f) for n, f in (state.get("epoch_failed") or {}).items()}
        self.window_failed = {w: {n: dict(f) for n, f in c.items()} for w, c in (state.get("window_failed") or {}).items()}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._count_pending()
        if not self.layers or not self.epoch_counts:
            return
        section = self._section(self.epoch_counts)
        section["epoch"] = trainer.current_epoch
        if self.hardware is not None:
            self._failed_writes(section, self.epoch_failed)
        self.history.append(section)
        sel = self.selected_pattern(section)
        metrics: dict[str, float] = {}
        for name, rep in section["layers"].items():
            metrics[f"write/{name}/changed_share"] = rep["changed_share"]
            metrics[f"write/{name}/non_adjacent_share"] = rep["non_adjacent_share"]
            if isinstance(rep["write_energy"], dict) and sel is not None:
                metrics[f"write/{name}/per_sample_fJ"] = rep["write_energy"][str(sel)]["per_sample_fJ"]
                if self.log_per_pattern:
                    for p, e in rep["write_energy"].items():
                        metrics[f"write_by_pattern/{name}/P{p}_per_weight_update_fJ"] = e["per_weight_update_fJ"]
        if sel is not None:
            metrics["write/selected_pattern"] = float(sel)
        pl_module.log_dict(metrics, sync_dist=True)  # equal on every rank: weights are replicas, counts were reduced
        rows = [
            [name, trainer.current_epoch, rep["changed_share"], rep["non_adjacent_share"],
             rep["write_energy"][str(sel)]["per_sample_fJ"] if isinstance(rep["write_energy"], dict) and sel else None]
            for name, rep in section["layers"].items()
        ]
        log_wandb_table(trainer, "write_by_layer",
                        ["layer", "epoch", "changed_share", "non_adjacent_share", "write_energy_per_sample_fJ"], rows)
        if trainer.is_global_zero:
            windows = {w: self._section(c) for w, c in self.window_counts.items()}
            if self.hardware is not None:  # the windows' failed writes, like the epochs'
                for w, section in windows.items():
                    self._failed_writes(section, self.window_failed.get(w, {}))
            update_energy_file(
                trainer,
                "write",
                {
                    "subset": self.subset,
                    "windows_epoch": self.window_epoch,
                    "windows_batches": self.windows,
                    "epochs": self.history,
                    "windows": windows,
                    "selected_pattern": sel,
                    **({"nonideal": self.hardware.summary()} if self.hardware is not None else {}),
                },
                self.mapping,
            )
