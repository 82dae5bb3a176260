"""Hardware-aware (noise-aware) training: the card's non-idealities act in the training forward pass.

OUR ADDITION, not in the QUEST paper (which trains on the ideal device); off by default
(`callbacks.hardware_aware.enabled=false`), and with every model of the card's `nonideal` block
off it does nothing at all, so such a run is the plain run bit for bit.

A *training chip* holds, for every cell of every device layer, the state it is in under the run's
R-S pattern (which must be a fixed number: the models are indexed by device state). During each
training step a device layer computes with

    w = q(w) + (s * W_eff - q(w)).detach(),   W_eff = perturbed_levels(level(state), r)

(quest.device.chip.perturbed_levels, the rule quest-eval uses): the value is the perturbed cell,
the gradient is that of the noise-free quantized weight (straight-through). Per model:

    programming_noise  r *= 1 + sigma_prog(s) N, N drawn anew every training step
    variation          r *= 1 + sigma_d2d(s) N_d2d[cell, s], drawn ONCE per run (the training chip,
                       seeded by `chip_seed`; the same draw as quest-eval's chip of that seed)
    stuck_at           the stuck cells, drawn once per run like variation, never change state
    read_noise         every read (each time step) w (1 + sigma_read(s) N), quest.evaluate.chips'
                       noisy_current, the noise term detached (straight-through); runs the layer on
                       the reference neuron backend
    write_failure      after each optimizer step, a cell whose quantized level changed (the moves the
                       transition monitor counts) is written from the state it holds to state(j) by
                       THE WRITE RULE of quest-eval (quest.device.chip.write_cells): hop by hop along
                       the RSTD's cheapest path, each hop failing with its p_fail (every hop of a stuck
                       cell fails), retried up to `max_attempts` with write-verify, every attempt
                       charged at the hop's E; a hop that still fails ends the write with the cell in
                       the state it reached (its source or an intermediate state), which the next
                       forward pass uses. Energy: C[source][reached] plus the failed attempts.

`redraw` (callbacks.hardware_aware.redraw) says how often the chip is drawn:

    run   (default) variation offsets and stuck cells drawn once per run, as above
    step  a new chip every training step, the usual way to make a network robust to chips it was not
          trained on: the stuck mask and the variation offsets are drawn anew at every step, keyed by
          (chip_seed, layer, model, step) (reproducible, and a resumed run draws the same chips).
          The cells' states carry over from step to step; a stuck cell holds the stuck state for that
          step's forward pass only (its state is kept), and the writes after that step's optimizer
          step fail for that step's stuck cells. Within a step a cell is read in one state only, so
          variation draws one N per cell per step: r *= 1 + sigma_d2d(s) N[cell, step].

Validation and test during training compute noise-free (the quantizer's q(w)) unless
`noisy_validation` is true. The transition monitor counts the cells' actual moves and charges the
failed attempts (quest.monitors.transitions); energy.json records both and the config in force.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch

from quest.device.chip import _STUCK, _VARIATION, _WRITE, ChipSpec, _rng, perturbed_levels, write_cells
from quest.device.mapping import DeviceMapping

_PROGRAMMING_STEP, _READ_STEP = 11, 12  # random streams of the per-step draws
REDRAW = ("run", "step")  # callbacks.hardware_aware.redraw: the chip drawn once per run, or every step


@dataclass
class LayerWrites:
    """One layer's writes after one optimizer step (all cells, weight-shaped tensors)."""

    before: torch.Tensor  # int8 levels the cells held
    after: torch.Tensor  # int8 levels they hold now
    attempts: int  # write attempts, all hops of all cells
    moves: int  # cells asked to change level
    failed_moves: int  # of those, cells whose write stopped at a failed hop (not in their target)
    energy_fJ: torch.Tensor  # float64 per cell: every attempt (the successful hops + the failed attempts)
    failed_energy_fJ: torch.Tensor  # float64 per cell: energy of the attempts that failed
    off_level_energy_fJ: torch.Tensor  # float64 per cell: what a count of level moves misses (see `write`)


class TrainingChip:
    """The per-cell device state of a run's device layers and the rule that turns it into weights."""

    def __init__(self, mapping: DeviceMapping, pattern: int, layers: list[tuple[str, Any]], seed: int,
                 redraw: str = "run") -> None:
        from quest.export.device import cell_mapping

        if redraw not in REDRAW:
            raise ValueError(f"callbacks.hardware_aware.redraw={redraw!r}: allowed {', '.join(REDRAW)}")
        self.redraw = redraw
        self.drawn_step: int | None = None  # redraw=step: the step whose chip the stuck masks and offsets are

        card = mapping.card
        self.nonideal = ni = card.nonideal
        self.seed = int(seed)
        cells = cell_mapping(card, mapping.bits, pattern)
        self.spec = spec = ChipSpec.build(card, cells)
        self.pattern = int(pattern)
        self.q_max = spec.q_max
        n = card.n_states
        device = layers[0][1].conv.weight.device if layers else torch.device("cpu")
        self.level_state = torch.tensor(spec.level_state, dtype=torch.long, device=device)
        self.level_of_state = torch.from_numpy(spec.level_of_state).to(device)  # 0 for a state holding no level
        self.attempt_limit = ni.write_failure.attempt_limit
        self.sigma = {m: torch.from_numpy(getattr(ni, m).sigmas(card.states).astype(np.float32)).to(device)
                      for m in ("programming_noise", "variation", "read_noise")}
        self.stuck_state = stuck_state = cells.initial_state if ni.stuck_at.state is None else card.index(ni.stuck_at.state)
        self.names = [name for name, _ in layers]
        self.state: dict[str, torch.Tensor] = {}
        self.requested: dict[str, torch.Tensor] = {}  # the levels the last step asked for
        self.stuck: dict[str, torch.Tensor | None] = {}  # this chip's stuck cells (redraw=step: this step's)
        self.offsets: dict[str, torch.Tensor | None] = {}  # N_d2d [cells, n] (redraw=step: [cells], this step's)
        for i, (name, layer) in enumerate(layers):
            levels = layer.weight_levels()
            self.requested[name] = levels
            state = self.level_state[levels.long() + self.q_max]
            count = state.numel()
            stuck = None
            if ni.stuck_at.on and redraw == "run":  # the draws of quest-eval's chip `seed`
                stuck = torch.from_numpy(_rng(seed, i, _STUCK).random(count) < ni.stuck_at.fraction).to(device)
                stuck = stuck.view_as(state)
                state = torch.where(stuck, torch.full_like(state, stuck_state), state)
            self.stuck[name] = stuck
            self.offsets[name] = (torch.from_numpy(_rng(seed, i, _VARIATION).standard_normal((count, n), dtype=np.float32))
                                  .to(device) if ni.variation.on and redraw == "run" else None)
            self.state[name] = state

    def draw(self, step: int) -> None:
        """redraw=step: draw the chip of training step `step` (every layer's stuck mask and variation
        offsets, keyed by (chip_seed, layer, model, step)); nothing for redraw=run or a step drawn."""
        if self.redraw != "step" or self.drawn_step == step:
            return
        ni = self.nonideal
        for i, name in enumerate(self.names):
            state = self.state[name]
            if ni.stuck_at.on:
                g = _generator(state.device, self.seed, i, _STUCK, step)
                self.stuck[name] = (torch.rand(state.shape, generator=g, device=state.device) < ni.stuck_at.fraction)
            if ni.variation.on:
                g = _generator(state.device, self.seed, i, _VARIATION, step)
                self.offsets[name] = torch.randn(state.numel(), generator=g, device=state.device)
        self.drawn_step = step

    def held_state(self, name: str) -> torch.Tensor:
        """The state each cell of layer `name` is read in: its state, or the stuck state where this
        step's chip has it stuck (redraw=step; with redraw=run a stuck cell's state is the stuck state)."""
        stuck = self.stuck[name]
        if self.redraw == "step" and stuck is not None:
            return torch.where(stuck, torch.full_like(self.state[name], self.stuck_state), self.state[name])
        return self.state[name]

    @property
    def perturbs_values(self) -> bool:
        """A model changes what a cell in its target state contributes (not only which state it is in)."""
        ni = self.nonideal
        return ni.programming_noise.on or ni.variation.on or ni.stuck_at.on or ni.write_failure.on

    def levels(self, name: str) -> torch.Tensor:
        """int8 levels the cells of layer `name` hold (a state holding no level reads as 0)."""
        return self.level_of_state[self.state[name]].to(torch.int8)

    def weight_levels(self, name: str, index: int, step: int) -> torch.Tensor:
        """W_eff of layer `name` at training step `step` (float, weight-shaped)."""
        self.draw(step)
        ni, state = self.nonideal, self.held_state(name)
        flat = state.reshape(-1)
        ratio = torch.ones(flat.shape, dtype=torch.float64, device=flat.device)
        if ni.programming_noise.on:
            g = _generator(flat.device, self.seed, index, _PROGRAMMING_STEP, step)
            normal = torch.randn(flat.shape, generator=g, device=flat.device)
            ratio = ratio * (1.0 + self.sigma["programming_noise"][flat].double() * normal.double())
        if ni.variation.on:
            offsets = self.offsets[name]
            assert offsets is not None
            offset = offsets.gather(1, flat[:, None]).squeeze(1) if offsets.dim() == 2 else offsets
            ratio = ratio * (1.0 + self.sigma["variation"][flat].double() * offset.double())
        return perturbed_levels(self.level_of_state[flat].double(), ratio).float().view_as(state)

    def write(self, name: str, index: int, step: int, requested: torch.Tensor) -> LayerWrites:
        """Write the levels `requested` (int8) into layer `name`'s cells whose requested level changed
        since the last step, from the states they hold, by the write rule (quest.device.chip.write_cells);
        stuck cells are those of the chip in force (redraw=step: the last step drawn, i.e. the step whose
        forward pass preceded this write).

        The transition monitor charges a cell's level move i -> j at C[state(i)][state(j)]; its
        successful hops cost C[u_0][u_k] (u_0 the state it held, u_k the state it reached). The two
        agree when u_0 and u_k hold levels; `off_level_energy_fJ` is the difference,
        C[u_0][u_k] - C[state(level(u_0))][state(level(u_k))], non-zero only for a cell starting or
        stopping in a state that holds no level (which reads as level 0)."""
        if self.drawn_step is None:
            self.draw(step)  # redraw=step: a write before any forward pass uses the chip of its own step
        spec = self.spec
        before_state = self.state[name]
        before = self.levels(name)
        target = self.level_state[requested.long() + self.q_max]
        move = (requested != self.requested[name]) & (target != before_state)
        self.requested[name] = requested
        idx = torch.nonzero(move.reshape(-1)).squeeze(1)
        src = before_state.reshape(-1)[idx].cpu().numpy()
        dst = target.reshape(-1)[idx].cpu().numpy()
        stuck = self.stuck[name]
        stuck_moving = stuck.reshape(-1)[idx].cpu().numpy() if stuck is not None else None
        ni = self.nonideal
        rng = _rng(self.seed, index, _WRITE, step) if ni.write_failure.on or ni.stuck_at.on else None
        done = write_cells(src, dst, stuck_moving, spec, self.attempt_limit, rng)
        reached = done.states
        charged = spec.charged_state
        off_level = spec.cost_fJ[src, reached] - spec.cost_fJ[charged[src], charged[reached]]

        def per_cell(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            out = torch.zeros(before_state.numel(), dtype=dtype, device=before_state.device)
            out[idx] = torch.from_numpy(values).to(out.device, dtype)
            return out.view_as(before_state)

        state = before_state.reshape(-1).clone()
        state[idx] = torch.from_numpy(reached).to(state.device)
        self.state[name] = state.view_as(before_state)
        return LayerWrites(before, self.levels(name), int(done.attempts.sum()), int(idx.numel()), int(done.failed.sum()),
                           per_cell(done.energy_fJ, torch.float64), per_cell(done.failed_energy_fJ, torch.float64),
                           per_cell(off_level, torch.float64))

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"state": {n: s.to(torch.uint8).cpu() for n, s in self.state.items()},
                "requested": {n: r.cpu() for n, r in self.requested.items()}}

    def load_state_dict(self, saved: dict[str, dict[str, torch.Tensor]]) -> None:
        for n, s in (saved.get("state") or {}).items():
            if n in self.state:
                self.state[n] = s.to(self.state[n].device, torch.long)
        for n, r in (saved.get("requested") or {}).items():
            if n in self.requested:
                self.requested[n] = r.to(self.requested[n].device)


def _generator(device: torch.device, seed: int, layer: int, model: int, step: int) -> torch.Generator:
    """A generator for one layer's draw of one model at one step (reproducible; resume-safe)."""
    key = np.random.SeedSequence([seed, layer, model, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(key) & ((1 << 63) - 1))


class HardwareAwareTraining(L.Callback):
    """Trains on a training chip (see the module docstring); receives the run's device mapping."""

    def __init__(self, mapping: DeviceMapping, enabled: bool = False, chip_seed: int = 0,
                 noisy_validation: bool = False, redraw: str = "run") -> None:
        if redraw not in REDRAW:
            raise ValueError(f"callbacks.hardware_aware.redraw={redraw!r}: allowed {', '.join(REDRAW)}")
        self.redraw = redraw
        self.mapping = mapping
        self.enabled = bool(enabled)
        self.chip_seed = int(chip_seed)
        self.noisy_validation = bool(noisy_validation)
        self.chip: TrainingChip | None = None
        self.layers: list[tuple[str, Any]] = []
        self.last_writes: dict[str, LayerWrites] = {}
        self._written_step: int | None = None
        self._restored: dict[str, torch.Tensor] = {}
        self._saved_backends: list[tuple[Any, str]] = []

    @property
    def active(self) -> bool:
        """Enabled, and the card has a non-ideality on (an ideal card leaves training untouched)."""
        return self.enabled and not self.mapping.card.nonideal.ideal and self.mapping.bits is not None

    @property
    def pattern(self) -> int:
        return int(self.mapping.selection)

    def setup_chip(self, pl_module: L.LightningModule) -> TrainingChip | None:
        """The training chip, built on first use (from the weights' levels then)."""
        if self.active and self.chip is None:
            self.layers = [(n, b) for n, b in pl_module.net.device_layers() if b.quantized]
            self.chip = TrainingChip(self.mapping, self.pattern, self.layers, self.chip_seed, self.redraw)
            self.chip.load_state_dict(self._restored)
        return self.chip

    def summary(self) -> dict[str, Any]:
        """What energy.json records of the training chip: the config in force."""
        return {
            "hardware_aware_training": True,
            "note": "our addition, not in the QUEST paper",
            "pattern": self.pattern,
            "chip_seed": self.chip_seed,
            "noisy_validation": self.noisy_validation,
            **({"redraw": self.redraw} if self.redraw != "run" else {}),  # absent: run (the records before the key)
            "nonideal": self.mapping.card.nonideal.summary(),
        }

    # -- the forward pass ---------------------------------------------------------------------------
    def _install(self, step: int) -> None:
        chip = self.chip
        assert chip is not None
        for i, (name, layer) in enumerate(self.layers):
            if chip.perturbs_values:
                levels = chip.weight_levels(name, i, step)

                def weight(layer: Any = layer, levels: torch.Tensor = levels) -> torch.Tensor:
                    wq = layer.quantizer(layer.conv.weight)
                    target = levels.to(wq.dtype) * (layer.quantizer.scale() / layer.quantizer.q_max)
                    return wq + (target - wq).detach()  # straight-through: d/dw as if noise-free

                layer.weight = weight  # an instance attribute shadows the method
            sigma = chip.sigma["read_noise"][chip.held_state(name)]
            if sigma.any():
                from quest.evaluate.chips import noisy_current

                g = _generator(sigma.device, chip.seed, i, _READ_STEP, step)
                layer.current = noisy_current(layer, sigma.to(layer.conv.weight.dtype), g, straight_through=True)
                self._saved_backends.append((layer, layer.neuron.backend))
                layer.neuron.backend = "reference"

    def _remove(self) -> None:
        for _, layer in self.layers:
            layer.__dict__.pop("weight", None)
            layer.__dict__.pop("current", None)
        for layer, backend in self._saved_backends:
            layer.neuron.backend = backend
        self._saved_backends = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.setup_chip(pl_module)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.setup_chip(pl_module) is not None:
            self._install(trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.chip is not None:
            self._remove()
            self.after_step(trainer.global_step)

    def after_step(self, step: int) -> dict[str, LayerWrites]:
        """Write the levels the optimizer step asked for (once per step; the transition monitor calls it too)."""
        if self.chip is None:
            return {}
        if self._written_step != step:
            self._written_step = step
            self.last_writes = {name: self.chip.write(name, i, step, layer.weight_levels())
                                for i, (name, layer) in enumerate(self.layers)}
        return self.last_writes

    def _eval_start(self, trainer: L.Trainer) -> None:
        if self.chip is not None and self.noisy_validation and not trainer.sanity_checking:
            self._install(trainer.global_step)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start(trainer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.chip is not None:
            self._remove()

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.chip is not None:
            self._remove()

    # -- checkpoint: a resumed run continues on the same chip ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"chip": self.chip.state_dict()} if self.chip is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = dict(state.get("chip") or {})
        if self.chip is not None:
            self.chip.load_state_dict(self._restored)


def hardware_aware(trainer: L.Trainer) -> HardwareAwareTraining | None:
    """The run's active hardware-aware training callback, if any."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, HardwareAwareTraining) and cb.active), None)

