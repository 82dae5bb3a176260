"""Write, read and CMOS energy accounting; every expected number worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from quest.energy import (
    E_AC_pJ,
    E_MAC_pJ,
    cmos_energy_pJ,
    conv_flops,
    layer_write_energy,
    linear_flops,
    non_adjacent_share,
    read_energy_fJ,
    transition_probabilities,
    write_energy_per_update_fJ,
)
from quest.device import get_pattern, load_card, read_vector_fJ, write_matrix_fJ

COUNTS = np.array([[38, 10, 2],
                   [20, 100, 15],
                   [0, 5, 10]])  # levels (-1, 0, +1); sum 200; 52 changed weights


def test_transition_probabilities():
    p = transition_probabilities(COUNTS)
    assert p.sum() == pytest.approx(1.0)
    assert p[1, 1] == pytest.approx(100 / 200) and p[0, 2] == pytest.approx(2 / 200)
    np.testing.assert_array_equal(transition_probabilities(np.zeros((3, 3))), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        transition_probabilities(-np.ones((3, 3)))
    with pytest.raises(ValueError):
        transition_probabilities(np.ones((3, 2)))


def test_write_energy_self_transitions_cost_nothing():
    e = np.array([[9.0, 1.0], [2.0, 9.0]])  # a non-zero diagonal is ignored
    # P = [[.25, .25], [.25, .25]]; E = .25*1 + .25*2 = 0.75
    assert write_energy_per_update_fJ(np.ones((2, 2)), e) == pytest.approx(0.75)


def test_layer_write_energy_p2():
    card = load_card("sk_mtj_3state")
    e2 = write_matrix_fJ(card, get_pattern(card, 2, 2))
    res = layer_write_energy(COUNTS, e2, n_weights=147_456, batch_size=256)
    # P2 (b, a, c): (10*5.1 + 2*5.8 + 20*5.1 + 15*5.8 + 0*10.9 + 5*5.8) / 200 = 280.6 / 200
    assert res.per_weight_update_fJ == pytest.approx(1.403)
    # x 147,456 weights = 147,456*1.4 + 147,456*0.003 = 206,438.4 + 442.368 = 206,880.768 fJ
    assert res.per_batch_fJ == pytest.approx(206_880.768)
    # / 256 samples = 1.403 * 576 = 808.128 fJ
    assert res.per_sample_fJ == pytest.approx(808.128)


def test_write_energy_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    card = load_card("sk_mtj_3state")
    e6 = torch.tensor(write_matrix_fJ(card, get_pattern(card, 2, 6)))
    # P6: (10*5.8 + 2*10.9 + 20*5.8 + 15*5.1 + 0*5.8 + 5*5.1) / 200 = 297.8 / 200 = 1.489
    assert write_energy_per_update_fJ(torch.tensor(COUNTS), e6) == pytest.approx(1.489)


def test_non_adjacent_share():
    s = non_adjacent_share(COUNTS)
    # jumps |i-j| > 1: -1->+1 (2) + +1->-1 (0) = 2; of all 200 counts: 0.01
    assert s.of_all == pytest.approx(2 / 200)
    # changed weights: 10 + 2 + 20 + 15 + 0 + 5 = 52 -> 2/52
    assert s.of_changes == pytest.approx(2 / 52)
    # 7 levels: jumps of 2 or more levels only
    c = np.zeros((7, 7))
    c[3, 4] = 6  # adjacent
    c[0, 3] = 2  # 3 levels
    c[5, 3] = 1  # 2 levels
    c[2, 2] = 11  # unchanged
    s = non_adjacent_share(c)
    assert s.of_all == pytest.approx(3 / 20) and s.of_changes == pytest.approx(3 / 9)
    assert non_adjacent_share(np.eye(3)).of_changes == 0.0


def test_read_energy_with_and_without_zero_reads():
    card = load_card("sk_mtj_3state")
    r6 = read_vector_fJ(card, get_pattern(card, 2, 6))  # (c, a, b): 1.807, 1.812, 1.809
    ops = np.array([1000, 5000, 3000])  # effective (spike=1) ops at weights -1, 0, +1
    # zeros not read: 1000*1.807 + 3000*1.809 = 1807 + 5427 = 7234 fJ
    assert read_energy_fJ(ops, r6, zero_level_index=1) == pytest.approx(7234.0)
    # zeros read too: + 5000*1.812 = 9060 -> 16294 fJ
    assert read_energy_fJ(ops, r6, 1, count_zero_reads=True) == pytest.approx(16294.0)
    # leading axes (e.g. layers) are kept: second row 10 ops at -1 -> 18.07 fJ
    both = read_energy_fJ(np.array([ops, [10, 0, 0]]), r6, 1)
    np.testing.assert_allclose(both, [7234.0, 18.07])
    with pytest.raises(ValueError):
        read_energy_fJ(np.ones(4), r6, 1)


def test_flops():
    assert conv_flops(3, 3, 16, 32, 32) == 9 * 3 * 16 * 1024 == 442_368
    assert conv_flops(3, 16, 32, 16, 16) == 9 * 16 * 32 * 256 == 1_179_648
    assert linear_flops(2048, 10) == 20_480


def test_cmos_energy_three_layer_network():
    assert (E_MAC_pJ, E_AC_pJ) == (4.6, 0.9)
    layers = [
        (conv_flops(3, 3, 16, 32, 32), None),   # encoding conv, non-spiking input: MACs
        (conv_flops(3, 16, 32, 16, 16), 0.5),   # spiking input, rate 0.5 (summed over T)
        (linear_flops(2048, 10), 0.25),         # spiking input, rate 0.25
    ]
    e = cmos_energy_pJ(layers)
    # ANN: (442,368 + 1,179,648 + 20,480) * 4.6 = 1,642,496 * 4.6 = 7,555,481.6 pJ
    assert e.ann_pJ == pytest.approx(7_555_481.6)
    # SNN: 442,368*4.6 + 1,179,648*0.5*0.9 + 20,480*0.25*0.9
    #    = 2,034,892.8 + 530,841.6 + 4,608 = 2,570,342.4 pJ
    assert e.snn_pJ == pytest.approx(2_570_342.4)
    assert e.ratio == pytest.approx(7_555_481.6 / 2_570_342.4)  # about 2.94x
    with pytest.raises(ValueError):
        cmos_energy_pJ([(100, -0.1)])
