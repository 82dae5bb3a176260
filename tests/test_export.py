"""quest-export: device programming maps and NIR graphs of trained runs (quest/export/)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ROOT, TINY, read_results, run_train
from quest.data.augment import normalize
from quest.export.cli import main as export_main
from quest.export.device import cell_mapping
from quest.export.programming_map import (
    build_map,
    map_logits,
    read_map,
    reprogramming,
    reprogramming_energy_fJ,
)
from quest.export.run import ExportError, TrainedRun, load_run

# sk_mtj_3state (REFERENCE.md section 7): fresh cells are in state a; a -> b 5.1 fJ, a -> c 5.8 fJ
CARD_FROM_A_fJ = {"a": 0.0, "b": 5.1, "c": 5.8}


def _train(tmp_path_factory, name: str, extra: list[str]) -> Path:
    out = tmp_path_factory.mktemp(name)
    proc = run_train([*TINY, *extra, f"hydra.run.dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_results(out)["status"] == "completed"
    return out


@pytest.fixture(scope="module")
def maxpool_run(tmp_path_factory) -> Path:
    """The quickstart net (max pooling, soft-reset encoding, MINT membrane), trained briefly."""
    return _train(tmp_path_factory, "export_maxpool", [])


@pytest.fixture(scope="module")
def avgpool_run(tmp_path_factory) -> Path:
    """The NIR-exact variant (IF hard reset everywhere, average pooling, real membrane), trained briefly."""
    return _train(tmp_path_factory, "export_avgpool", ["model=vgg8_avgpool"])


def _test_images(run: TrainedRun, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    dm = instantiate(run.config.data)
    dm.setup("test")
    x, y = dm.splits["test"]
    x, y = (x[:n], y[:n]) if n else (x, y)
    return normalize(x, dm.hparams.mean, dm.hparams.std), y


def _git_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


# -- programming map ------------------------------------------------------------------------------
def test_map_files_hold_levels_states_thresholds_energy_and_provenance(maxpool_run, tmp_path, capsys):
    assert export_main(["map", str(maxpool_run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"programming_map.json", "programming_map.npz", "programming_energy.png"}
    # loadable without torch: numpy and json only
    code = (
        "import json, sys, numpy as np\n"
        f"m = json.load(open({str(tmp_path / 'programming_map.json')!r}))\n"
        f"a = np.load({str(tmp_path / 'programming_map.npz')!r})\n"
        "print(json.dumps({k: list(a[k].shape) for k in a.files}))\n"
        "assert 'torch' not in sys.modules\n"
    )
    shapes = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    arrays, manifest = read_map(tmp_path)
    run = load_run(maxpool_run)
    energy = json.loads((maxpool_run / "energy.json").read_text())
    assert manifest["device"]["pattern"] == energy["write"]["selected_pattern"]  # the run's selected pattern
    assert manifest["precision"] == {"bits": 2, "q_max": 1, "levels": [-1, 0, 1]}
    assert manifest["time_steps"] == 4 and manifest["integer_inference"] is True
    names = [l["name"] for l in manifest["layers"]]
    assert names == run.model.block_names and manifest["layers"][0]["kind"] == "encoding"
    total = 0.0
    for (name, block), layer in zip(run.model.device_layers(), manifest["layers"][1:]):
        levels, states = arrays[f"{name}/levels"], arrays[f"{name}/states"]
        assert levels.dtype == np.int8 and list(levels.shape) == list(block.conv.weight.shape) == shapes[f"{name}/levels"]
        assert np.array_equal(levels, block.weight_levels().numpy())
        # every cell holds the state of its level under the pattern
        for lv, state in manifest["device"]["level_state"].items():
            assert (np.array(manifest["device"]["states"])[states[levels == int(lv)]] == state).all()
        alpha = block.quantizer.scale().item()
        assert layer["alpha"] == alpha and layer["threshold_int"] == math.floor(0.5 * 1 / alpha)
        # fresh cells: a -> state(level), by the card's numbers
        expected = sum(CARD_FROM_A_fJ[manifest["device"]["level_state"][lv]] * n for lv, n in layer["level_counts"].items())
        assert manifest["programming_energy_fJ"]["layers"][name] == pytest.approx(expected)
        assert sum(layer["level_counts"].values()) == levels.size
        total += expected
    assert manifest["programming_energy_fJ"]["total"] == pytest.approx(total) and total > 0
    assert np.array_equal(arrays["conv1/weight"], run.model.blocks[0].conv.weight.detach().numpy())
    assert np.array_equal(arrays["head1/bias"], run.model.head[-1].bias.detach().numpy())
    prov = manifest["provenance"]
    assert prov["trained_by"]["commit"] == _git_head() and prov["config"]["device"]["name"] == "sk_mtj_3state"
    assert "programming map of 5 device layers on sk_mtj_3state" in capsys.readouterr().out


def test_map_under_a_named_pattern(maxpool_run, tmp_path):
    assert export_main(["map", str(maxpool_run), "--pattern", "6", "--out", str(tmp_path)]) == 0
    _, manifest = read_map(tmp_path)
    assert manifest["device"]["pattern"] == 6
    assert manifest["device"]["level_state"] == {"-1": "c", "0": "a", "1": "b"}  # QUEST's P6


def test_map_driven_integer_inference_equals_the_checkpoints(maxpool_run):
    """Levels, thresholds, tables, encoding and head from the files alone reproduce the checkpoint's
    integer inference exactly (100 test images here; all of them in the slow test)."""
    run = load_run(maxpool_run)
    arrays, manifest = build_map(run)
    x, _ = _test_images(run, 100)
    from_map = map_logits(arrays, manifest, x)
    from_ckpt = run.model.integer_forward(x)
    assert torch.equal(from_map, from_ckpt)
    assert torch.equal(from_ckpt.sum(0).argmax(-1), run.model(x).sum(0).argmax(-1))


@pytest.mark.slow
def test_map_driven_integer_inference_on_the_whole_test_set(maxpool_run, tmp_path):
    """The round trip through the files, on every image of the run's test split."""
    assert export_main(["map", str(maxpool_run), "--out", str(tmp_path)]) == 0
    arrays, manifest = read_map(tmp_path)
    run = load_run(maxpool_run)
    x, _ = _test_images(run)
    assert len(x) == 500
    assert torch.equal(map_logits(arrays, manifest, x), run.model.integer_forward(x))


def test_reprogramming_energy_is_the_cheapest_path_per_changed_cell():
    card = OmegaConf.load(ROOT / "conf" / "device" / "sk_mtj_3state.yaml")
    cells = cell_mapping(card, 2, 6)
    a, b, c = (cells.states.index(s) for s in "abc")
    old = np.array([a, a, b, c, c, b], dtype=np.uint8)
    new = np.array([a, b, c, b, a, b], dtype=np.uint8)
    # a->a 0, a->b 5.1, b->c 5.8, c->b via a 10.9, c->a 5.8, b->b 0
    assert reprogramming_energy_fJ(old, new, cells.cost_fJ) == pytest.approx(5.1 + 5.8 + 10.9 + 5.8)
    manifest = {"device": {"card": "sk_mtj_3state", "cost_fJ": cells.cost_fJ.tolist()}, "provenance": {"checkpoint": "old"},
                "layers": [{"name": "conv2", "kind": "device", "arrays": {"states": "conv2/states"}}]}
    record = reprogramming(({"conv2/states": old}, manifest), ({"conv2/states": new}, manifest))
    assert record["layers"]["conv2"] == {"energy_fJ": pytest.approx(27.6), "cells_changed": 4, "cells": 6}
    other = dict(manifest, device={"card": "rram_hfox_4level", "cost_fJ": manifest["device"]["cost_fJ"]})
    with pytest.raises(ExportError, match="same device card"):
        reprogramming(({"conv2/states": old}, other), ({"conv2/states": new}, manifest))


def test_map_from_an_older_checkpoint_adds_reprogramming(maxpool_run, tmp_path):
    ckpt = maxpool_run / "checkpoints" / "last.ckpt"
    assert export_main(["map", str(ckpt), "--from", str(ckpt), "--out", str(tmp_path)]) == 0
    _, manifest = read_map(tmp_path)
    assert manifest["reprogramming"]["total_fJ"] == 0.0  # the same net: nothing to re-write
    assert all(l["cells_changed"] == 0 for l in manifest["reprogramming"]["layers"].values())


def test_map_of_an_fp32_net_fails_with_one_line(compose_cfg, tmp_path):
    cfg = compose_cfg(["experiment=quickstart", "precision=fp32", "model.width_mult=0.0625"])
    run = TrainedRun(tmp_path / "x.ckpt", tmp_path, cfg, instantiate(cfg.model).eval(), {})
    with pytest.raises(ExportError, match="precision=fp32: the net has no weight levels"):
        build_map(run, 1)


# -- NIR ------------------------------------------------------------------------------------------
nir = pytest.importorskip("nir")


def _sj_import(path: Path):
    pytest.importorskip("nirtorch")
    from_nir = pytest.importorskip("spikingjelly.activation_based.nir_exchange.from_nir")
    graph = nir.read(path)
    return from_nir.import_from_nir(graph, dt=float(graph.metadata["quest.dt_s"]), step_mode="m")


def _quest_spikes(model, x):
    """QUEST's forward with every layer's spikes (before pooling) and membrane input H recorded."""
    seen = {}

    def observer(name):
        def record(layer, inp, spikes):
            current = layer.current(inp, model.time_steps, static=inp.dim() == 4)
            h_all, u = [], torch.zeros_like(current[0])
            for t in range(current.shape[0]):  # H_t = x_t + U_{t-1}; hard reset, real membrane
                h = current[t] + u
                u = layer.neuron.leak * h * (1.0 - spikes[t])
                h_all.append(h)
            seen[name] = (spikes.clone(), torch.stack(h_all))
        return record

    for name, block in zip(model.block_names, model.blocks):
        block.observer = observer(name)
    with torch.no_grad():
        logits = model(x)
    for block in model.blocks:
        block.observer = None
    return logits, seen


def _compare_with_spikingjelly(run: TrainedRun, path: Path, x: torch.Tensor) -> None:
    sj = _sj_import(path)
    sj_spikes = {}
    for name, module in sj.named_modules():
        if name.endswith("_neuron"):
            module.register_forward_hook(lambda m, i, o, n=name[: -len("_neuron")]: sj_spikes.__setitem__(n, o[0]))
    steps = run.model.time_steps
    with torch.no_grad():
        sj_logits, _ = sj(x.unsqueeze(0).expand(steps, *x.shape).contiguous(), None)
    logits, quest = _quest_spikes(run.model, x)
    ties_before = False
    for name in run.model.block_names:
        spikes, h = quest[name]
        theta = run.model.blocks[0].neuron.theta
        tie = h == theta  # SpikingJelly fires at H >= theta, QUEST and NIR at H > theta
        if not ties_before:
            assert torch.equal(sj_spikes[name][~tie], spikes[~tie]), name
            assert (sj_spikes[name][tie] == 1).all() and (spikes[tie] == 0).all()
        ties_before = ties_before or bool(tie.any())
    if not ties_before:
        assert torch.equal(sj_logits, logits)
    assert torch.equal(sj_logits.sum(0).argmax(-1), logits.sum(0).argmax(-1))


def test_nir_export_of_a_trained_hard_reset_net_runs_the_same_in_spikingjelly(avgpool_run, tmp_path, capsys):
    out = tmp_path / "net.nir"
    assert export_main(["nir", str(avgpool_run / "checkpoints" / "last.ckpt"), "--out", str(out)]) == 0
    assert "(exact)" in capsys.readouterr().out
    graph = nir.read(out)
    meta = graph.metadata
    assert meta["quest.exact"] and json.loads(meta["quest.approximations"]) == []
    assert meta["quest.time_steps"] == 4 and meta["quest.dt_s"] == 1e-4
    assert meta["quest.trained_by_commit"] == _git_head()
    assert json.loads(meta["quest.config"])["model"]["pool"] == "avg"
    run = load_run(avgpool_run)
    assert isinstance(graph.nodes["conv2.neuron"], nir.IF) and np.all(graph.nodes["conv2.neuron"].r == 1e4)
    assert isinstance(graph.nodes["conv2.pool"], nir.AvgPool2d)
    conv = graph.nodes["conv3.conv"]
    block = run.model.blocks[2]
    alpha, q = conv.metadata["quest.alpha"], conv.metadata["quest.q_max"]
    assert alpha == block.quantizer.scale().item() and q == 1 and list(conv.metadata["quest.levels"]) == [-1, 0, 1]
    assert conv.metadata["quest.pattern"] == json.loads((avgpool_run / "energy.json").read_text())["write"]["selected_pattern"]
    levels = conv.metadata["quest.weight_levels"]
    assert np.array_equal(conv.weight, block.weight().detach().numpy())
    assert np.allclose(conv.weight, alpha / q * levels, rtol=1e-6, atol=0)
    x, _ = _test_images(run, 64)
    _compare_with_spikingjelly(run, out, x)


def test_nir_export_of_lif_runs_the_same_in_spikingjelly(compose_cfg, tmp_path):
    """LIF: tau = dt / (1 - leak), r = tau / dt, reset to zero; SpikingJelly's LIF (decay_input off)
    follows U_t = leak * H_t * (1 - S_t) exactly."""
    from quest.export.nir_graph import to_nir, write_nir

    cfg = compose_cfg(["experiment=quickstart", "model=vgg8_avgpool", "neuron=lif_hard", "model.width_mult=0.125"])
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    run = TrainedRun(tmp_path / "x.ckpt", tmp_path, cfg, model, {})
    graph = to_nir(run, (3, 32, 32), dt=1e-3)
    lif = graph.nodes["conv2.neuron"]
    assert isinstance(lif, nir.LIF)
    assert np.allclose(lif.tau, 1e-3 / (1 - 0.5)) and np.allclose(lif.r, 2.0) and not lif.v_leak.any()
    path = write_nir(graph, tmp_path / "lif.nir")
    x = torch.randn(8, 3, 32, 32)
    _, quest = _quest_spikes(model, x)
    assert all(quest[n][0].any() for n in model.block_names[:2])  # the net is not silent
    _compare_with_spikingjelly(run, path, x)


def test_nir_refuses_what_it_cannot_represent_with_one_line(maxpool_run, tmp_path, capsys):
    ckpt = str(maxpool_run / "checkpoints" / "last.ckpt")
    assert export_main(["nir", ckpt, "--out", str(tmp_path / "no.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("quest-export: error: not representable in NIR 1.0:")
    assert "soft reset (conv1)" in err and "MINT membrane quantisation (conv2, conv3, conv4, conv5, conv6)" in err
    assert not (tmp_path / "no.nir").exists()
    assert export_main(["nir", ckpt, "--lossy", "--out", str(tmp_path / "lossy.nir")]) == 0
    graph = nir.read(tmp_path / "lossy.nir")
    approx = json.loads(graph.metadata["quest.approximations"])
    assert not graph.metadata["quest.exact"] and len(approx) == 2
    assert approx[0].startswith("soft reset (conv1) exported as a reset to zero")
    assert approx[1].startswith("MINT membrane quantisation (conv2, conv3, conv4, conv5, conv6) dropped")
    # max pooling of spikes is exact: the mean of the window, then a threshold at zero
    assert isinstance(graph.nodes["conv2.pool"], nir.AvgPool2d) and isinstance(graph.nodes["conv2.pool_threshold"], nir.Threshold)
    assert ("conv2.pool", "conv2.pool_threshold") in graph.edges


# -- the NIR-exact model variant -------------------------------------------------------------------
def test_avgpool_variant_trains_like_the_reference_backend(compose_cfg):
    """After an average pool a layer's input is not 0/1: the fused path must not keep it as bool."""
    cfg = compose_cfg(["experiment=quickstart", "model=vgg8_avgpool", "model.width_mult=0.125"])
    assert cfg.model.pool == "avg" and cfg.model.encoding_reset == "hard" and cfg.model.quantize_membrane is False
    torch.manual_seed(0)
    fused = instantiate(cfg.model)
    assert not fused.blocks[0].neuron.soft_reset and [b.spike_input for b in fused.blocks][2] is False
    ref_cfg = compose_cfg(["experiment=quickstart", "model=vgg8_avgpool", "model.width_mult=0.125", "neuron.backend=reference"])
    with torch.no_grad():  # larger weights than at init, so that every layer spikes
        for block in list(fused.blocks)[1:]:
            block.conv.weight.mul_(4)
    reference = instantiate(ref_cfg.model)
    reference.load_state_dict(fused.state_dict())
    x = 3 * torch.randn(4, 3, 32, 32)
    grads = []
    for net in (fused, reference):
        net.zero_grad()
        net(x).square().mean().backward()
        grads.append(net.blocks[2].conv.weight.grad.clone())  # conv3: its input is conv2's average pool
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)
