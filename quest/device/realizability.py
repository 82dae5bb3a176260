"""Can a device host a network configuration? (REFERENCE.md section 7.)

b-bit weights use k = 2^b - 1 levels, each on its own device state, so a device with n states
holds at most b_max bits, the largest b with 2^b - 1 <= n (3 states: 2-bit, 7 states: 3-bit).
fp32 weights need a continuum of states. A LIF neuron (leak < 1) needs a device that decays
spontaneously; a device without decay hosts only IF neurons (leak = 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from quest.device.card import DeviceCard


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
    while 2 ** (b + 1) - 1 <= card.n_states:
        b += 1
    return b


def check_realizable(card: DeviceCard, bits: int | None, leak: float) -> Realizability:
    """Weights of ``bits`` precision (None = fp32) and neurons of ``leak`` on ``card``."""
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits < 1):
        raise ValueError(f"bits={bits!r}: a positive integer, or None for fp32")
    if not 0.0 < leak <= 1.0:
        raise ValueError(f"leak={leak!r}: must be in (0, 1] (1 = IF, < 1 = LIF)")
    reasons = []
    if bits is None:
        reasons.append(f"fp32 weights need a continuum of states; {card.name} holds "
                       f"{card.n_states}")
    elif bits == 1:
        reasons.append("1-bit weights have no symmetric level set in QUEST's quantizer "
                       "(Q = 2^(b-1) - 1 = 0); use 2 bits or more")
    elif 2 ** bits - 1 > card.n_states:
        reasons.append(f"{bits}-bit weights need {2 ** bits - 1} states; {card.name} holds "
                       f"{card.n_states} (at most {max_bits(card)}-bit)")
    if leak < 1.0 and not card.leaky:
        reasons.append(f"{card.name} has no spontaneous decay, so it cannot host LIF neurons "
                       f"(leak={leak:g})")
    return Realizability(not reasons, "; ".join(reasons))
