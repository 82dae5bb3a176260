"""R-S mapping patterns: numbering, write matrices, read vectors, pattern selection.

The 3-state card's cost matrix (states a, b, c; rows from, columns to), by hand:
    a->b 5.1, a->c 5.8, b->a 5.1, b->c 5.8, c->a 5.8, c->b = c->a->b = 5.8 + 5.1 = 10.9.
Pattern Pn puts weights (-1, 0, +1) on states (s-1, s0, s+1); E_p[i][j] = C[s_i][s_j].
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from quest.device import (
    DeviceCard,
    DeviceCardError,
    best_pattern,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    load_card,
    pattern_number,
    read_vector_fJ,
    search_best_pattern,
    weight_levels,
    write_matrix_fJ,
)

# (states of -1, 0, +1), then the write matrix rows -1, 0, +1 worked from the cost list above.
HAND = {
    1: (("a", "b", "c"), [[0, 5.1, 5.8],     # -1->0 a->b, -1->+1 a->c
                          [5.1, 0, 5.8],     # 0->-1 b->a, 0->+1 b->c
                          [5.8, 10.9, 0]]),  # +1->-1 c->a, +1->0 c->b (via a)
    2: (("b", "a", "c"), [[0, 5.1, 5.8],     # b->a, b->c
                          [5.1, 0, 5.8],     # a->b, a->c
                          [10.9, 5.8, 0]]),  # c->b (via a), c->a
    3: (("c", "b", "a"), [[0, 10.9, 5.8],    # c->b (via a), c->a
                          [5.8, 0, 5.1],     # b->c, b->a
                          [5.8, 5.1, 0]]),   # a->c, a->b
    4: (("a", "c", "b"), [[0, 5.8, 5.1],     # a->c, a->b
                          [5.8, 0, 10.9],    # c->a, c->b (via a)  [published table: 5.1]
                          [5.1, 5.8, 0]]),   # b->a, b->c          [published table: 10.9]
    5: (("b", "c", "a"), [[0, 5.8, 5.1],     # b->c, b->a
                          [10.9, 0, 5.8],    # c->b (via a), c->a
                          [5.1, 5.8, 0]]),   # a->b, a->c
    6: (("c", "a", "b"), [[0, 5.8, 10.9],    # c->a, c->b (via a)
                          [5.8, 0, 5.1],     # a->c, a->b
                          [5.8, 5.1, 0]]),   # b->c, b->a
}
# read energies a 1.812, b 1.809, c 1.807, in the order of the pattern's states
READ = {1: [1.812, 1.809, 1.807], 2: [1.809, 1.812, 1.807], 3: [1.807, 1.809, 1.812],
        4: [1.812, 1.807, 1.809], 5: [1.809, 1.807, 1.812], 6: [1.807, 1.812, 1.809]}

# A transition-count matrix over levels (-1, 0, +1), rows from, columns to; sum = 200.
COUNTS = np.array([[38, 10, 2],
                   [20, 100, 15],
                   [0, 5, 10]])
# sum_ij N_ij E_ij / 200 over the off-diagonal counts
# (-1->0: 10, -1->+1: 2, 0->-1: 20, 0->+1: 15, +1->-1: 0, +1->0: 5):
HAND_ENERGY = {
    1: (10 * 5.1 + 2 * 5.8 + 20 * 5.1 + 15 * 5.8 + 0 * 5.8 + 5 * 10.9) / 200,   # 306.1/200
    2: (10 * 5.1 + 2 * 5.8 + 20 * 5.1 + 15 * 5.8 + 0 * 10.9 + 5 * 5.8) / 200,   # 280.6/200
    3: (10 * 10.9 + 2 * 5.8 + 20 * 5.8 + 15 * 5.1 + 0 * 5.8 + 5 * 5.1) / 200,   # 338.6/200
    4: (10 * 5.8 + 2 * 5.1 + 20 * 5.8 + 15 * 10.9 + 0 * 5.1 + 5 * 5.8) / 200,   # 376.7/200
    5: (10 * 5.8 + 2 * 5.1 + 20 * 10.9 + 15 * 5.8 + 0 * 5.1 + 5 * 5.8) / 200,   # 402.2/200
    6: (10 * 5.8 + 2 * 10.9 + 20 * 5.8 + 15 * 5.1 + 0 * 5.8 + 5 * 5.1) / 200,   # 297.8/200
}
HAND_ENERGY_VALUES = {1: 1.5305, 2: 1.403, 3: 1.693, 4: 1.8835, 5: 2.011, 6: 1.489}


@pytest.fixture(scope="module")
def card3():
    return load_card("sk_mtj_3state")


@pytest.fixture(scope="module")
def card7():
    return load_card("sk_mtj_7state")


def random_complete_card(n: int, seed: int) -> DeviceCard:
    """n states, every ordered pair directly writable at a random energy (asymmetric)."""
    rng = np.random.default_rng(seed)
    states = [f"q{i}" for i in range(n)]
    return DeviceCard(name=f"rand{n}_{seed}", states=tuple(states), initial_state="q0",
                      read_energy_fJ={s: float(rng.uniform(1, 2)) for s in states},
                      write_energy_fJ={(a, b): float(rng.uniform(1, 20))
                                       for a, b in itertools.permutations(states, 2)})


def test_weight_levels():
    assert weight_levels(2) == (-1, 0, 1)
    assert weight_levels(3) == (-3, -2, -1, 0, 1, 2, 3)
    assert len(weight_levels(4)) == 15
    with pytest.raises(ValueError):
        weight_levels(1)


def test_counts(card3, card7):
    assert count_patterns(card3, 2) == 6          # 3!/0!
    assert count_patterns(card3, 3) == 0          # 7 levels do not fit 3 states
    assert count_patterns(card7, 2) == 210        # 7!/4! = 7*6*5
    assert count_patterns(card7, 3) == 5040       # 7!
    with pytest.raises(DeviceCardError, match="need 7 distinct states"):
        enumerate_patterns(card3, 3)


def test_quest_numbering_on_the_3state_card(card3):
    pats = enumerate_patterns(card3, 2)
    assert [p.number for p in pats] == [1, 2, 3, 4, 5, 6]
    for p in pats:
        assert p.levels == (-1, 0, 1)
        assert p.states == HAND[p.number][0]
    p6 = get_pattern(card3, 2, 6)
    assert p6.state_of(-1) == "c" and p6.state_of(0) == "a" and p6.state_of(1) == "b"
    assert pattern_number(card3, ("c", "a", "b")) == 6


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_write_matrices_of_the_six_patterns(card3, number):
    pattern = get_pattern(card3, 2, number)
    np.testing.assert_allclose(write_matrix_fJ(card3, pattern), HAND[number][1])


def test_p6_matches_reference_and_p4_is_derived(card3):
    e6 = write_matrix_fJ(card3, get_pattern(card3, 2, 6))
    # REFERENCE.md: P6 -1->0 5.8, -1->+1 10.9, 0->-1 5.8, 0->+1 5.1, +1->-1 5.8, +1->0 5.1
    assert (e6[0, 1], e6[0, 2], e6[1, 0], e6[1, 2], e6[2, 0], e6[2, 1]) == pytest.approx(
        (5.8, 10.9, 5.8, 5.1, 5.8, 5.1))
    e4 = write_matrix_fJ(card3, get_pattern(card3, 2, 4))
    # derived, not the authors' published 5.1 / 10.9: 0->+1 = c->b = 10.9, +1->0 = b->c = 5.8
    assert e4[1, 2] == pytest.approx(10.9) and e4[2, 1] == pytest.approx(5.8)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_read_vectors_of_the_six_patterns(card3, number):
    np.testing.assert_allclose(read_vector_fJ(card3, get_pattern(card3, 2, number)),
                               READ[number])


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_write_energy_of_a_count_matrix_under_each_pattern(card3, number):
    from quest.energy import write_energy_per_update_fJ

    assert HAND_ENERGY[number] == pytest.approx(HAND_ENERGY_VALUES[number])
    e = write_energy_per_update_fJ(COUNTS, write_matrix_fJ(card3, get_pattern(card3, 2, number)))
    assert e == pytest.approx(HAND_ENERGY_VALUES[number])


def test_best_pattern_picks_the_minimum(card3):
    pattern, energy = best_pattern(card3, 2, COUNTS)
    assert pattern.number == 2 and energy == pytest.approx(1.403)  # 280.6 / 200, the minimum
    # Mirror the counts (swap the roles of -1 and +1): now P6 = (c, a, b) wins with the same
    # 1.403: -1->0 5*5.8 + -1->+1 0*10.9 + 0->-1 15*5.8 + 0->+1 20*5.1 + +1->-1 2*5.8
    # + +1->0 10*5.1 = 29 + 0 + 87 + 102 + 11.6 + 51 = 280.6, / 200 = 1.403
    mirrored = COUNTS[::-1, ::-1]
    pattern, energy = best_pattern(card3, 2, mirrored)
    assert pattern.number == 6 and energy == pytest.approx(1.403)
    # Only adjacent moves, more traffic between 0 and +1 (QUEST's regime). Counts
    # -1->0: 1, 0->-1: 1, 0->+1: 3, +1->0: 3 (sum 8); sum of N*E per pattern:
    # P1 5.1+5.1+3*5.8+3*10.9 = 60.3   P2 5.1+5.1+3*5.8+3*5.8 = 45.0
    # P3 10.9+5.8+3*5.1+3*5.1 = 47.3   P4 5.8+5.8+3*10.9+3*5.8 = 61.7
    # P5 5.8+10.9+3*5.8+3*5.8 = 51.5   P6 5.8+5.8+3*5.1+3*5.1 = 42.2  -> P6, 42.2/8 = 5.275
    adjacent = np.array([[0, 1, 0], [1, 0, 3], [0, 3, 0]])
    pattern, energy = best_pattern(card3, 2, adjacent)
    assert pattern.number == 6 and energy == pytest.approx(42.2 / 8)


def test_enumeration_numbering_without_explicit_order(card7):
    pats = enumerate_patterns(card7, 2)
    assert len(pats) == 210
    assert pats[0].states == ("s0", "s1", "s2") and pats[0].number == 1
    assert pats[1].states == ("s0", "s1", "s3")
    assert pats[-1].states == ("s6", "s5", "s4") and pats[-1].number == 210
    # arithmetic unranking and ranking agree with itertools order
    for p in pats:
        assert get_pattern(card7, 2, p.number) == p
        assert pattern_number(card7, p.states) == p.number
    with pytest.raises(ValueError):
        get_pattern(card7, 2, 211)


def test_enumeration_limit_and_large_pattern_spaces():
    card = random_complete_card(15, seed=3)
    assert count_patterns(card, 3) == 15 * 14 * 13 * 12 * 11 * 10 * 9  # 32,432,400
    with pytest.raises(ValueError, match="enumeration limit"):
        enumerate_patterns(card, 3)
    # get_pattern still works by arithmetic unranking; the last pattern is the reversed tail
    last = get_pattern(card, 3, count_patterns(card, 3))
    assert last.states == ("q14", "q13", "q12", "q11", "q10", "q9", "q8")
    counts = np.random.default_rng(0).integers(0, 50, size=(7, 7))
    pattern, energy = best_pattern(card, 3, counts, restarts=4)  # goes to the search
    assert len(set(pattern.states)) == 7
    assert pattern_number(card, pattern.states) == pattern.number
    assert energy == pytest.approx(float(
        (counts / counts.sum() * write_matrix_fJ(card, pattern)).sum()))


def _check_search_matches_enumeration(card, bits, seeds):
    k = 2 ** bits - 1
    for s in seeds:
        counts = np.random.default_rng(s).integers(0, 100, size=(k, k))
        _, exact = best_pattern(card, bits, counts)
        found, energy = search_best_pattern(card, bits, counts, seed=0)
        assert energy == pytest.approx(exact, abs=1e-9), (card.name, bits, s)
        # the reported energy is the pattern's true energy
        e = float((counts / counts.sum() * write_matrix_fJ(card, found)).sum())
        assert e == pytest.approx(energy)


def test_search_equals_enumeration_3state_2bit(card3):
    _check_search_matches_enumeration(card3, 2, range(10))


def test_search_equals_enumeration_7state_2bit(card7):
    _check_search_matches_enumeration(card7, 2, range(10))
    _check_search_matches_enumeration(random_complete_card(7, seed=1), 2, range(10))


def test_search_equals_enumeration_rram_2bit():
    _check_search_matches_enumeration(load_card("rram_hfox_4level"), 2, range(10))


def test_search_equals_enumeration_7state_3bit(card7):
    _check_search_matches_enumeration(card7, 3, range(6))
    _check_search_matches_enumeration(random_complete_card(7, seed=2), 3, range(6))


def test_search_is_deterministic(card7):
    counts = np.random.default_rng(5).integers(0, 100, size=(7, 7))
    assert search_best_pattern(card7, 3, counts, seed=4) == search_best_pattern(
        card7, 3, counts, seed=4)


def test_counts_shape_is_checked(card3):
    with pytest.raises(ValueError, match="shape"):
        best_pattern(card3, 2, np.ones((4, 4)))
