"""Can a device host a network configuration? (REFERENCE.md section 7.) Two separate questions:

- synapse: b-bit weights use k = 2^b - 1 levels, each on its own device state, so a device with
  n states holds at most b_max bits, the largest b with 2^b - 1 <= n (3 states: 2-bit, 7 states:
  3-bit); fp32 weights need a continuum of states. When the levels fit, the synapses' write and
  read energy can be computed, whatever the neuron.
- neuron: a LIF neuron (leak < 1) needs a device that decays spontaneously; a device without
  decay hosts only IF neurons (leak = 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from quest.device.card import DeviceCard
from quest.levels import num_levels


@dataclass(frozen=True)
class Realizability:
    """``ok`` or not; ``reason`` reads well after "not realizable on <device>: "."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def max_bits(card: DeviceCard) -> int:
    """Largest b with 2^b - 1 <= number of states."""
    b = 0
    while num_levels(b + 1) <= card.n_states:
        b += 1
    return b


def synapse_fits(card: DeviceCard, bits: int | None) -> Realizability:
    """Do weights of ``bits`` precision (None = fp32) fit ``card``'s states?"""
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits < 1):
        raise ValueError(f"bits={bits!r}: a positive integer, or None for fp32")
    if bits is None:
        return Realizability(False, f"fp32 weights need a continuum of states; {card.name} holds "
                                    f"{card.n_states}")
    if bits == 1:
        return Realizability(False, "1-bit weights have no symmetric level set in QUEST's quantizer "
                                    "(Q = 2^(b-1) - 1 = 0); use 2 bits or more")
    if num_levels(bits) > card.n_states:
        return Realizability(False, f"{bits}-bit weights need {num_levels(bits)} states; {card.name} "
                                    f"holds {card.n_states} (at most {max_bits(card)}-bit)")
    return Realizability(True)


def neuron_hostable(card: DeviceCard, leak: float) -> Realizability:
    """Can ``card`` host neurons of ``leak`` (1 = IF, < 1 = LIF)?"""
    if not 0.0 < leak <= 1.0:
        raise ValueError(f"leak={leak!r}: must be in (0, 1] (1 = IF, < 1 = LIF)")
    if leak < 1.0 and not card.leaky:
        return Realizability(False, f"{card.name} has no spontaneous decay, so it cannot host LIF "
                                    f"neurons (leak={leak:g})")
    return Realizability(True)


def check_realizable(card: DeviceCard, bits: int | None, leak: float) -> Realizability:
    """Both parts: weights of ``bits`` precision and neurons of ``leak`` on ``card``."""
    parts = [synapse_fits(card, bits), neuron_hostable(card, leak)]
    return Realizability(all(parts), "; ".join(p.reason for p in parts if not p))
