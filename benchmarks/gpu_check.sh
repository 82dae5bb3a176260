#!/usr/bin/env bash
# GPU readiness check, one prepared script within 15 minutes of a CUDA machine:
#   1. the step benchmark at batch 128 (QUEST fp32 / bf16-mixed, SpikingJelly, the dense floor; the monitor
#      update's time and share of the step: "monitor_update_b128"),
#   2. the end-to-end epoch slice against SpikingJelly's bare loop (benchmarks/bench_epoch.py),
#   3. one timed epoch of full CIFAR-10 with train.py: VGG8 (width 1), 2-bit IF_Hard, T = 4, batch 256,
#      data on the GPU, monitors on (the paper's recipe, REFERENCE.md section 6).
# Writes benchmarks/gpu_check.json (or $1/gpu_check.json) with every number, the commands and the machine.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [CIFAR10_NPZ]
#
# Without the CIFAR-10 arrays (they are 184 MB), steps 2 and 3 run on random uint8 images of CIFAR-10's
# shapes; the JSON says which. Time per step does not depend on pixel values except through spike rates.
#
# On this workplace's GPU machine (the device tool: Python 3.12, torch and lightning installed, no registry),
# the packages it lacks travel as wheels. Here, in the repo root, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.2 omegaconf==2.3.0 spikingjelly==2.0.0 wandb
# then run with carry [".whl"]:
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD &&
#   bash benchmarks/gpu_check.sh "$OUT"
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks}
NPZ=${2:-../shared/data/cifar10/cifar10.npz}
mkdir -p "$OUT_DIR/gpu_check_logs"
LOGS="$OUT_DIR/gpu_check_logs"
export PYTHONUNBUFFERED=1 QUEST_ROOT="$PWD" WANDB_MODE=offline WANDB_SILENT=true
PY=${PYTHON:-python3}

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "gpu_check: no CUDA device"; exit 2; }
DATA_KIND=real
if [ ! -f "$NPZ" ]; then
  NPZ=/tmp/cifar10_synthetic.npz
  DATA_KIND="synthetic (random uint8 of CIFAR-10's shapes; the real arrays were not on this machine)"
  "$PY" - "$NPZ" <<'PY'
import sys, numpy as np
g = np.random.default_rng(0)
np.savez(sys.argv[1], x_train=g.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
         y_train=g.integers(0, 10, 50000, dtype=np.int64), x_test=g.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
         y_test=g.integers(0, 10, 10000, dtype=np.int64))
PY
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOGS/gpu.txt" 2>&1

status_step=0; status_epoch_slice=0; status_epoch=0
timeout 240 "$PY" benchmarks/bench_train_step.py --device cuda --batch-size 128 --steps 20 --warmup 3 \
  --variants quest quest-bf16 spikingjelly spikingjelly-bf16 floor floor-bf16 --memory-repeats 1 \
  --out "$OUT_DIR/gpu_check_logs/step_b128" > "$LOGS/step_b128.log" 2>&1 || status_step=$?
timeout 180 "$PY" benchmarks/bench_epoch.py --device cuda --width 0.25 --batch-size 128 --steps 390 --rounds 2 \
  --data "$NPZ" --out "$OUT_DIR/gpu_check_logs/epoch_slice" > "$LOGS/epoch_slice.log" 2>&1 || status_epoch_slice=$?
START=$(date +%s.%N)
timeout 300 "$PY" train.py experiment=quest_cifar10 trainer=gpu data=cifar10_npz data.path="$NPZ" \
  trainer.max_epochs=1 logger=csv hydra.run.dir="$LOGS/epoch_run" > "$LOGS/epoch.log" 2>&1 || status_epoch=$?
END=$(date +%s.%N)

"$PY" - "$OUT_DIR" "$DATA_KIND" "$status_step" "$status_epoch_slice" "$status_epoch" "$START" "$END" <<'PY'
import json, subprocess, sys
from pathlib import Path
out, data_kind, s_step, s_slice, s_epoch, start, end = sys.argv[1:]
logs = Path(out) / "gpu_check_logs"
def load(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError):
        return None
run = load(logs / "epoch_run" / "results.json") or {}
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
report = {
    "gpu": (logs / "gpu.txt").read_text().strip() if (logs / "gpu.txt").exists() else None,
    "commit": commit,
    "data": data_kind,
    "step_benchmark_b128": {"exit_code": int(s_step), "report": load(logs / "step_b128.json")},
    # the transition monitor's update after one step (timed inside the monitored step, with CUDA syncs)
    "monitor_update_b128": ((load(logs / "step_b128.json") or {}).get("monitor") or {}),
    "epoch_slice_vs_spikingjelly": {"exit_code": int(s_slice), "report": load(logs / "epoch_slice.json")},
    "full_epoch_vgg8_2bit_if_hard": {
        "exit_code": int(s_epoch),
        "command": "python train.py experiment=quest_cifar10 trainer=gpu data=cifar10_npz trainer.max_epochs=1 logger=csv",
        "status": run.get("status"), "wall_time_s_fit_and_test": run.get("wall_time_s"),
        "process_wall_s": round(float(end) - float(start), 1), "test_acc": run.get("test_acc"),
        "energy": run.get("energy"),
    },
}
Path(out, "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({k: (v if k != "step_benchmark_b128" and k != "epoch_slice_vs_spikingjelly" else v["exit_code"]) for k, v in report.items() if k != "full_epoch_vgg8_2bit_if_hard"}, indent=1))
print(json.dumps(report["full_epoch_vgg8_2bit_if_hard"], indent=1))
PY
