#!/usr/bin/env bash
# The CPU-scale reproduction (reproduction/README.md): 9 jobs in one sweep folder. Run from the
# repository root; SWEEP_DIR may name the folder (re-running with the same folder skips finished jobs).
set -euo pipefail
SWEEP_DIR=${SWEEP_DIR:-logs/multirun/cpu_reproduction}
common=(+sweep=cpu_reproduction "hydra.sweep.dir=$SWEEP_DIR")
# The paper's recipe: IF_Hard at 2/3/4-bit and FP32, and the other three neurons at 2-bit.
python train.py -m "${common[@]}" precision=2,3,4,fp32 neuron=if_hard
python train.py -m "${common[@]}" precision=2 neuron=if_soft,lif_hard,lif_soft
# The opt-in remedy for the silent start of 3/4-bit (module.start_spike_rate, not in the paper).
python train.py -m "${common[@]}" precision=3,4 neuron=if_hard module.start_spike_rate=0.1
python -m quest.report "$SWEEP_DIR"
