"""Spiking VGG built from a layer list, REFERENCE.md section 2.

`layers` lists conv widths and "M" (a 2 x 2 pool after the conv before it: max pooling, or
average pooling with `pool="avg"`). The first conv is the encoding layer: full precision, soft
reset (hard with `encoding_reset="hard"`), membrane not quantized. Every later conv is quantized to `bits` (device
layers). After the last conv an adaptive average pool to `pool_out` x `pool_out`, then a
full-precision linear head (with bias, no neuron between its layers) gives logits at every step.

QUEST's VGG8: layers [128, 128, M, 256, 256, M, 512, 512], pool_out 4, head_hidden [1024].
MINT's VGG9: layers [64, 64, M, 128, 128, M, 256, 256, 256], pool_out 1, head_hidden [].
The NIR-exact variant (conf/model/vgg8_avgpool.yaml, quest/export/nir_graph.py) pools by average
and resets the encoding neuron to zero: every operation then has a NIR 1.0 node.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from quest.snn.encoding import Encoder
from quest.snn.layers import SpikingConv
from quest.snn.neurons import NEURONS, SpikingNeuron, neuron_leak

POOLS = ("max", "avg")
ENCODING_RESETS = ("soft", "hard")


def make_neuron(spec: Mapping[str, Any], soft_reset: bool | None = None) -> SpikingNeuron:
    """Neuron from its config: {name, theta, leak, surrogate, detach_reset, backend}.

    With soft_reset=True (False), the soft-reset (hard-reset) model of the same leak (the encoding
    layer's neuron); None keeps the configured model.
    """
    spec = dict(spec)
    name = spec.pop("name")
    if name not in NEURONS:
        raise ValueError(f"neuron.name={name!r}: allowed {sorted(NEURONS)}")
    if soft_reset is not None:
        spec.update(leak=neuron_leak({"name": name, **spec}), reset="soft" if soft_reset else "hard")
        return SpikingNeuron(**spec)
    return NEURONS[name](**spec)


class SpikingVGG(nn.Module):
    """Spiking VGG: encoder -> spiking convs over T -> avg pool -> linear head; logits [T, B, K]."""

    def __init__(
        self,
        encoder: Encoder,
        neuron: Mapping[str, Any],
        layers: Sequence[int | str] = (128, 128, "M", 256, 256, "M", 512, 512),
        bits: int | None = 2,
        quantize_membrane: bool = True,
        num_classes: int = 10,
        in_channels: int = 3,
        pool_out: int = 4,
        head_hidden: Sequence[int] = (1024,),
        width_mult: float = 1.0,
        channels_last: bool = False,
        pool: str = "max",
        encoding_reset: str = "soft",
    ) -> None:
        super().__init__()
        if not layers or layers[0] == "M":
            raise ValueError(f"model.layers={list(layers)}: must start with a conv width")
        if pool not in POOLS:
            raise ValueError(f"model.pool={pool!r}: allowed {list(POOLS)}")
        if encoding_reset not in ENCODING_RESETS:
            raise ValueError(f"model.encoding_reset={encoding_reset!r}: allowed {list(ENCODING_RESETS)}")
        self.pool_kind = pool
        self.encoder = encoder
        self.time_steps = encoder.time_steps
        self.bits = bits
        self.channels_last = channels_last
        self.blocks = nn.ModuleList()
        self.block_names: list[str] = []
        channels = in_channels
        specs = list(layers)
        after_avg = False  # the input of a layer after an average pool is not spikes (0/1)
        for i, item in enumerate(specs):
            if item == "M":
                continue
            if not (isinstance(item, int) and item > 0):
                raise ValueError(f"model.layers: {item!r} is neither a positive width nor 'M'")
            width = max(1, round(item * width_mult))
            followed_by_pool = i + 1 < len(specs) and specs[i + 1] == "M"
            first = not self.blocks
            window = (nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)) if followed_by_pool else None
            block = SpikingConv(
                channels,
                width,
                make_neuron(neuron, soft_reset=(encoding_reset == "soft") if first else None),
                bits=None if first else bits,
                quantize_membrane=quantize_membrane,
                pool=window,
                spike_input=False if after_avg else None,
            )
            after_avg = followed_by_pool and pool == "avg"
            self.blocks.append(block)
            self.block_names.append(f"conv{len(self.blocks)}")
            channels = width
        self.pool = nn.AdaptiveAvgPool2d(pool_out)
        head: list[nn.Module] = []
        features = channels * pool_out * pool_out
        for hidden in head_hidden:
            hidden = max(1, round(hidden * width_mult))
            head.append(nn.Linear(features, hidden))
            features = hidden
        head.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head)
        for m in self.head:
            nn.init.kaiming_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def device_layers(self) -> list[tuple[str, SpikingConv]]:
        """The layers a device holds: every spiking conv after the encoding layer."""
        return list(zip(self.block_names[1:], list(self.blocks)[1:]))

    @torch.no_grad()
    def integer_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [T, B, K] with every device layer run in integers (SpikingConv.integer_forward,
        quest/snn/integer_inference.py); the encoding layer and the head in full precision."""
        if self.pool_kind != "max":
            raise ValueError("integer inference needs spike inputs: with model.pool=avg a layer's input is an average")
        inp = self.encoder(x)
        static = self.encoder.is_static
        for i, block in enumerate(self.blocks):
            if i == 0:
                inp = block(inp, self.time_steps, static=static)
                continue
            spikes, _ = block.integer_forward(inp)
            if block.pool is not None:
                spikes = block.pool(spikes.flatten(0, 1).float()).unflatten(0, spikes.shape[:2])
            inp = spikes.float()
        t, b = inp.shape[:2]
        features = self.pool(inp.flatten(0, 1)).flatten(1)
        return self.head(features).unflatten(0, (t, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised images [B, C, H, W] -> logits [T, B, num_classes]."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        inp = self.encoder(x)
        static = self.encoder.is_static
        for block in self.blocks:
            inp = block(inp, self.time_steps, static=static)
            static = False
        t, b = inp.shape[:2]
        features = self.pool(inp.flatten(0, 1)).flatten(1)
        return self.head(features).unflatten(0, (t, b))
