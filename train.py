"""Train a QUEST spiking network from a checkout: python train.py [experiment=quickstart] [group=option ...].

The same as `python -m quest.train` (quest/train.py), with runs under this folder's logs/.
Multirun grids: python train.py -m precision=2,3,4 neuron=if_hard,lif_soft
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QUEST_ROOT", str(Path(__file__).resolve().parent))

from quest.train import main  # noqa: E402

if __name__ == "__main__":
    main()
