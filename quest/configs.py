"""Where QUEST's Hydra configs live, in a source checkout, an editable install or a wheel alike.

The repository's top-level conf/ (device cards included) and sweeps/ are the source; the package
reaches them as quest/conf and quest/sweeps (links in the repository, copies in a wheel), so the
same paths work wherever quest is imported from.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).parent
CONF_DIR = PACKAGE_DIR / "conf"
SWEEPS_DIR = PACKAGE_DIR / "sweeps"
DEVICE_CARDS_DIR = CONF_DIR / "device"


def register_resolvers() -> None:
    """`${quest_sweeps_dir:}` (conf/train.yaml's search path for `+sweep=`), `${unquote:...}` (job
    folder names without the quotes of numeric group options) and `${quest_job_name_excluded_keys:}`
    (the settings job folder names leave out, quest.not_training) and `${quest_groups:}` (the groups and
    their options that `--help` lists, conf/hydra/help/quest.yaml)."""
    OmegaConf.register_new_resolver("quest_sweeps_dir", lambda: str(SWEEPS_DIR), replace=True)
    OmegaConf.register_new_resolver("unquote", lambda s: str(s).replace("'", "").replace('"', ""), replace=True)
    OmegaConf.register_new_resolver("quest_job_name_excluded_keys", _job_name_excluded_keys, replace=True)
    OmegaConf.register_new_resolver("quest_groups", _group_listing, replace=True)  # python train.py --help


def _group_listing() -> str:
    from quest.config_keys import group_listing

    return group_listing(CONF_DIR, [SWEEPS_DIR])


def _job_name_excluded_keys() -> list[str]:
    from quest.not_training import job_name_excluded_keys

    return job_name_excluded_keys()
