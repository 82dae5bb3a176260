"""Train a QUEST spiking network: python train.py [experiment=quickstart] [group=option ...].

Multirun grids: python train.py -m precision=2,3,4 neuron=if_hard,lif_soft
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("QUEST_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from quest.config_checks import ConfigError, check_cli_overrides, quote_numeric_group_options  # noqa: E402
from quest.config_keys import check_override_keys, group_listing  # noqa: E402
from quest.pipeline import exit_on_config_error, train  # noqa: E402

# Job folder names without the quotes that numeric group options need (precision='2').
OmegaConf.register_new_resolver("unquote", lambda s: str(s).replace("'", "").replace('"', ""), replace=True)
# python train.py --help lists every group with its options (conf/hydra/help/quest.yaml).
OmegaConf.register_new_resolver("quest_groups", lambda: group_listing(ROOT / "conf", [ROOT / "sweeps"]), replace=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    try:
        check_cli_overrides(sys.argv[1:], ROOT / "conf")
        check_override_keys(sys.argv[1:], ROOT / "conf", [ROOT / "sweeps"])
    except ConfigError as e:
        exit_on_config_error(str(e))
    sys.argv[1:] = quote_numeric_group_options(sys.argv[1:], ROOT / "conf")
    main()
