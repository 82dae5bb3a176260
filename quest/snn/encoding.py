"""Input encoders, REFERENCE.md section 3: image [B, C, H, W] -> network input over T steps.

- direct (default): the (normalised) image itself is the input at every step; the first,
  full-precision conv + neuron turns it into spikes. Because the image is the same at every step,
  the encoding conv runs once and its output is repeated over T (`is_static`).
- rate: Bernoulli spikes with probability equal to the pixel intensity in [0, 1].
- latency: one spike per pixel at t = round((1 - intensity) * (T - 1)); zero intensity never fires.

Rate and latency coding need intensities, so they undo the data module's normalisation
(x * std + mean) before encoding.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Encoder(nn.Module):
    """Base: `time_steps` T and whether the output is the same at every step."""

    is_static: bool = False

    def __init__(
        self,
        time_steps: int = 4,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        if not (isinstance(time_steps, int) and time_steps >= 1):
            raise ValueError(f"encoding.time_steps={time_steps!r}: must be an integer >= 1")
        self.time_steps = time_steps
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Undo normalisation: pixel intensity in [0, 1]."""
        return (x * self.std + self.mean).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}"


class DirectEncoder(Encoder):
    """Direct coding: returns the image [B, C, H, W]; the model repeats the first conv over T."""

    is_static = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class RateEncoder(Encoder):
    """Rate (Bernoulli) coding: S_t ~ Bernoulli(intensity), shape [T, B, C, H, W]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.intensity(x)
        return torch.bernoulli(p.unsqueeze(0).expand(self.time_steps, *p.shape))


class LatencyEncoder(Encoder):
    """Latency (time-to-first-spike) coding: one spike at t = round((1 - p) (T - 1)), none if p = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.intensity(x)
        fire_step = torch.round((1.0 - p) * (self.time_steps - 1))
        steps = torch.arange(self.time_steps, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1, 1)
        return ((steps == fire_step.unsqueeze(0)) & (p.unsqueeze(0) > 0)).to(x.dtype)
