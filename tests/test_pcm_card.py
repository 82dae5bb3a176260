"""The 16-level PCM card: a published 4-bit/cell cell, so 4-bit weights get device energy (issue 16, item 7).

Expected numbers are worked by hand from the card's pulses (the card's unit-check comment)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY, read_results, run_train
from quest.device import check_realizable, load_card, max_bits, transition_cost_matrix_fJ

RESET_FJ = 1.5 * 200e-6 * 50e-9 * 1e15  # 15000 fJ: any level -> L15
PARTIAL_SET_FJ = 1.0 * 100e-6 * 100e-9 * 1e15  # 10000 fJ: one level down


def test_card_is_cited_marked_and_holds_4_bit_weights():
    card = load_card("pcm_16level")
    assert card.n_states == 16 and max_bits(card) == 4
    assert "doi:10.1109/IEDM.2007.4418973" in card.citation and "4 bits per cell" in card.citation
    assert card.reconstruction and "OURS" in card.reconstruction_note
    for bits in (2, 3, 4):
        assert check_realizable(card, bits, 1.0)
    assert not check_realizable(card, 4, 0.5)  # no decay: IF neurons only
    assert card.read_energy_fJ["L0"] == pytest.approx(0.2**2 / 1e4 * 10e-9 * 1e15)  # 40 fJ
    assert card.read_energy_fJ["L15"] == pytest.approx(0.4)


def test_write_costs_follow_reset_and_partial_set():
    card = load_card("pcm_16level")
    cost = np.asarray(transition_cost_matrix_fJ(card))
    assert cost[5, 4] == pytest.approx(PARTIAL_SET_FJ)  # one level down: one partial SET
    assert cost[5, 2] == pytest.approx(3 * PARTIAL_SET_FJ)
    assert cost[3, 15] == pytest.approx(RESET_FJ)  # up to the amorphous level: one RESET
    assert cost[3, 5] == pytest.approx(RESET_FJ + 10 * PARTIAL_SET_FJ)  # up: RESET, then down to L5
    assert np.all(np.diag(cost) == 0) and np.all(np.isfinite(cost))


@pytest.mark.slow
def test_4_bit_run_gets_write_energy_on_the_pcm_card(tmp_path):
    proc = run_train([*TINY, "device=pcm_16level", "precision=4", "trainer.limit_train_batches=2",
                      "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    energy = read_results(tmp_path)["energy"]
    assert energy["realizable"] and energy["device"] == "pcm_16level"
    assert energy["write_energy_per_sample_fJ"] > 0
    layers = json.loads((tmp_path / "energy.json").read_text())["write"]["epochs"][-1]["layers"]
    assert len(next(iter(layers.values()))["transition_counts"]) == 15  # levels -7..7
