"""The report over seeds (mean ± std, n) and its accuracy figure (issue 16, items 9-11), on hand-made jobs."""
from __future__ import annotations

import re

from test_report import assert_png, make_config, make_job

from quest.report import write_report
from quest.report import markdown as md
from quest.report.jobs import find_jobs, group_networks, replicate_groups


def test_mean_std_cells():
    assert md.mean_std([0.1, 0.2, 0.3]) == "0.2 ± 0.1 (n = 3)"
    assert md.mean_std([0.5]) == "0.5 (n = 1)"
    assert md.mean_std([None, 0.25]) == "0.25 (n = 1)" and md.mean_std([]) is None


def grid(root, seeds, accs):
    """precision 2 and 3 x the given seeds; test accuracy from `accs[(bits, seed)]`."""
    for bits in (2, 3):
        for seed in seeds:
            config = make_config(str(root / f"p{bits}s{seed}"), bits=bits)
            config["seed"] = seed
            config["data"] = {"num_classes": 10}
            make_job(root, f"p{bits}s{seed}", [f"precision={bits}", f"seed={seed}"], config,
                     test_acc=accs[(bits, seed)], best_val_acc=accs[(bits, seed)], epochs=2)


def test_seeds_give_mean_std_rows_and_one_accuracy_bar_per_setting(tmp_path):
    grid(tmp_path, (1, 2, 3), {(2, 1): 0.3, (2, 2): 0.4, (2, 3): 0.5, (3, 1): 0.2, (3, 2): 0.2, (3, 3): 0.2})
    networks = group_networks(find_jobs(tmp_path))
    groups = replicate_groups(networks)
    assert list(groups) == ["precision=2", "precision=3"] and [len(g) for g in groups.values()] == [3, 3]
    text = write_report(tmp_path).read_text()
    seeds = text.split("## Over seeds", 1)[1]
    assert re.search(r"^\| precision=2 \| N1, N2, N3 \| 3 \| 0\.4 ± 0\.1 \(n = 3\) \|", seeds, flags=re.M)
    assert re.search(r"^\| precision=3 \| N4, N5, N6 \| 3 \| 0\.2 ± 0 \(n = 3\) \|", seeds, flags=re.M)
    assert "dotted line: chance" in text
    assert_png(tmp_path / "report_figs" / "accuracy.png")


def test_a_single_seed_says_n_1(tmp_path):
    grid(tmp_path, (7,), {(2, 7): 0.3, (3, 7): 0.25})
    seeds = write_report(tmp_path).read_text().split("## Over seeds", 1)[1]
    assert re.search(r"^\| precision=2 \| N1 \| 1 \| 0\.3 \(n = 1\) \|", seeds, flags=re.M)
    assert re.search(r"^\| precision=3 \| N2 \| 1 \| 0\.25 \(n = 1\) \|", seeds, flags=re.M)
