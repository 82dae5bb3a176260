#!/usr/bin/env bash
# The CPU-scale reproduction (reproduction/README.md), all jobs in one sweep folder. Run from the
# repository root; SWEEP_DIR may name the folder. Re-running with the same folder skips completed
# jobs and resumes interrupted or killed ones from the last.ckpt in their folder, so a run that
# spans sessions is this same command again. The default folder, reproduction/cpu_sweep, is
# committed (records, logs, report; an unfinished job's last.ckpt too), so it survives a machine
# that keeps nothing but the repository between sessions.
set -euo pipefail
SWEEP_DIR=${SWEEP_DIR:-reproduction/cpu_sweep}
SHORT_EPOCHS=${SHORT_EPOCHS:-3}   # the grid's other jobs: what a 2-core machine affords (~10 min an epoch)
common=(+sweep=cpu_reproduction "hydra.sweep.dir=$SWEEP_DIR")
# 1. The headline: 2-bit IF_Hard, the paper's recipe, 15 epochs (the sweep config's max_epochs).
python train.py -m "${common[@]}" precision=2 neuron=if_hard
# 2. The paper's recipe at 3/4-bit: one epoch shows where it stands (the start is silent, README sec. 1).
python train.py -m "${common[@]}" precision=3,4 neuron=if_hard trainer.max_epochs=1
# 3. The grid at matched epochs (cosine over SHORT_EPOCHS): IF_Hard 2-bit and FP32, the other three
#    neurons at 2-bit, and 3/4-bit IF_Hard with the opt-in start calibration (not in the paper).
short=("${common[@]}" "trainer.max_epochs=$SHORT_EPOCHS")
python train.py -m "${short[@]}" precision=2,fp32 neuron=if_hard
python train.py -m "${short[@]}" precision=3,4 neuron=if_hard module.start_spike_rate=0.1
python train.py -m "${short[@]}" precision=2 neuron=if_soft,lif_hard,lif_soft
python -m quest.report "$SWEEP_DIR"
