"""bits -> levels, written once (quest.levels) and read by the quantizer, the patterns and realizability."""
from __future__ import annotations

from quest.device import load_card, max_bits, synapse_fits, weight_levels
from quest.levels import max_level, num_levels
from quest.snn.quantizer import MintQuantizer


def test_levels_of_each_precision():
    assert [max_level(b) for b in (2, 3, 4)] == [1, 3, 7]
    assert [num_levels(b) for b in (2, 3, 4)] == [3, 7, 15]
    assert weight_levels(3) == (-3, -2, -1, 0, 1, 2, 3)
    for bits in (2, 3, 4):
        q = MintQuantizer(bits)
        assert (q.q_max, q.num_levels) == (max_level(bits), num_levels(bits)) == (max(weight_levels(bits)), len(weight_levels(bits)))


def test_realizability_counts_the_same_levels():
    card = load_card("sk_mtj_7state")
    assert max_bits(card) == 3 and synapse_fits(card, 3) and not synapse_fits(card, 4)
    assert "4-bit weights need 15 states" in synapse_fits(card, 4).reason
