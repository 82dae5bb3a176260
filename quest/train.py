"""Train a QUEST spiking network: python -m quest.train (or quest-train, or python train.py in a
checkout) [experiment=quickstart] [group=option ...].

Multirun grids: python -m quest.train -m precision=2,3,4 neuron=if_hard,lif_soft
Runs land in ./logs (paths.log_dir), under $QUEST_ROOT when set (train.py sets it to the checkout).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from quest.config_checks import ConfigError, check_cli_overrides, quote_numeric_group_options
from quest.config_keys import check_override_keys
from quest.configs import CONF_DIR, SWEEPS_DIR
from quest.pipeline import exit_on_config_error, train


@hydra.main(version_base="1.3", config_path=str(CONF_DIR.resolve()), config_name="train")
def _run(cfg: DictConfig) -> float | None:
    return train(cfg)


def main() -> None:
    """Check the command line's group options, then let Hydra compose and run."""
    try:
        check_cli_overrides(sys.argv[1:], CONF_DIR)
        check_override_keys(sys.argv[1:], CONF_DIR, [SWEEPS_DIR])
    except ConfigError as e:
        exit_on_config_error(str(e))
    sys.argv[1:] = quote_numeric_group_options(sys.argv[1:], CONF_DIR)
    _run()


if __name__ == "__main__":
    main()
