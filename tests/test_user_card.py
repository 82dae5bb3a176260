"""A device card from the user's own folder: Hydra's --config-dir (or hydra.searchpath) adds it, the
command-line check accepts it, and the run reports energy on it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import CONF, TINY, run_train
from quest.config_checks import ConfigError, check_cli_overrides, user_config_dirs


def _user_card(folder: Path) -> Path:
    card = yaml.safe_load((CONF / "device" / "sk_mtj_3state.yaml").read_text())
    card.update(name="my_mtj", description="a user's copy of the 3-state Sk-MTJ")
    card.pop("pattern_order", None)  # patterns numbered in permutation order
    (folder / "device").mkdir(parents=True)
    (folder / "device" / "my_mtj.yaml").write_text(yaml.safe_dump(card))
    return folder


def test_command_line_check_knows_user_config_folders(tmp_path):
    user = _user_card(tmp_path / "conf")
    for argv in (["-cd", str(user)], [f"--config-dir={user}"], [f"hydra.searchpath=[file://{user}]"]):
        assert user_config_dirs(argv) == [user]
        check_cli_overrides([*argv, "device=my_mtj"], CONF)
    with pytest.raises(ConfigError, match="device=my_mtj: allowed pcm_16level, rram_hfox_4level"):
        check_cli_overrides(["device=my_mtj"], CONF)


def test_run_on_a_card_from_the_users_folder(tmp_path):
    user = _user_card(tmp_path / "conf")
    proc = run_train(["-cd", str(user), *TINY, "device=my_mtj", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    energy = json.loads((tmp_path / "run" / "energy.json").read_text())
    assert energy["device"]["name"] == "my_mtj" and energy["device"]["pattern_count"] == 6
    assert set(energy["write"]["epochs"][-1]["layers"]["conv2"]["write_energy"]) == {"1", "2", "3", "4", "5", "6"}


def test_a_card_that_is_not_valid_yaml_is_one_line_before_hydra(tmp_path):
    """A YAML syntax error in a user's card used to come out as Hydra's parser traceback."""
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "broken.yaml").write_text("name: broken\nstates: [\n  {name: a\n")
    with pytest.raises(ConfigError, match=r"device=broken: .*broken.yaml is not valid YAML: .*\(line 4, column 1\)"):
        check_cli_overrides(["-cd", str(tmp_path), "device=broken"], CONF)
    proc = run_train(["-cd", str(tmp_path), *TINY, "device=broken", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]
    assert proc.stderr.strip().startswith("config error: device=broken:") and not (tmp_path / "run").exists()
