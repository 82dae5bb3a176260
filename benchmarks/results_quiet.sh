#!/usr/bin/env bash
# Reruns, on a quiet machine, every command whose output fills the "Issue 15" table of benchmarks/RESULTS.md,
# and writes their JSON/markdown under benchmarks/results/quiet/ (plus summary.md: the table's numbers).
# About 6-10 minutes on the project's 2-core CPU machine when nothing else runs (check `uptime` first:
# the load average should be well below 1; the script records it before and after every command).
#
#   bash benchmarks/results_quiet.sh [OUT_DIR]            # default benchmarks/results/quiet
#   QUICK=1 bash benchmarks/results_quiet.sh /tmp/smoke   # tiny settings: checks that every command runs
#   ONLY="step_b16 epoch_bf16" bash benchmarks/results_quiet.sh OUT  # only the commands of these names
#
# Needs the bench extra (spikingjelly: pip install -e ".[bench]") and the CIFAR-10 arrays at
# ../shared/data/cifar10/cifar10.npz (or NPZ=/path/to/cifar10.npz).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/quiet}
NPZ=${NPZ:-../shared/data/cifar10/cifar10.npz}
PY=${PYTHON:-python}
BEFORE=${BEFORE:-4be567f}  # main before issue 15's changes
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline WANDB_SILENT=true
if [ -n "${QUICK:-}" ]; then
  S16="--steps 2 --warmup 1"; S64="--steps 1 --warmup 1"; SAB="--steps 1 --warmup 0"; SPROF="--steps 1 --warmup 0"
  SEP="--steps 2 --rounds 1 --width 0.125"; SEPB=$SEP; B16=2; B64=4
else
  S16="--steps 12 --warmup 2"; S64="--steps 8 --warmup 1"; SAB="--steps 8 --warmup 1"; SPROF="--steps 3 --warmup 1"
  SEP="--steps 39 --rounds 3 --width 0.25"; SEPB="--steps 39 --rounds 2 --width 0.25"; B16=16; B64=64
fi
LOG="$OUT/commands.log"
: > "$LOG"
run() {  # run NAME CMD...: logs the command, the load before/after and the exit code
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $name: $* | load before: $(cut -d' ' -f1-3 /proc/loadavg) | $(date -u +%FT%TZ)" | tee -a "$LOG"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc | load after: $(cut -d' ' -f1-3 /proc/loadavg) | $(date -u +%FT%TZ)" | tee -a "$LOG"
}
{ echo "commit $(git rev-parse HEAD)$(git diff --quiet || echo ' (working tree modified)')"; uptime; nproc; } > "$OUT/machine.txt"
START=$(date +%s)

# 0. the numbers are the same as before this work: logits, gradients, levels bit for bit (not timed)
run identical "$PY" benchmarks/check_identical.py --before-rev "$BEFORE"
# 1. bf16-mixed training step at batch 16 and 64, 2 threads: QUEST (eager, and with the opt-in compiled scan
#    backward, module.compile_scan=true) vs the bf16 floor and SpikingJelly bf16; QUEST fp32 is there for the
#    monitor (quest+monitor: the transition monitor after every step)
for B in $B16 $B64; do
  if [ "$B" = "$B16" ]; then STEPS=$S16; else STEPS=$S64; fi
  run "step_b$B" "$PY" benchmarks/bench_train_step.py --variants quest quest-bf16 quest-compiled-bf16 floor-bf16 \
    spikingjelly-bf16 --batch-size "$B" $STEPS --threads 2 --no-memory --no-data --no-optimizer --out "$OUT/step_b$B"
done
# 2. before/after of this work, bf16-mixed, batch 16, 2 threads, in one process
run ab_b16 "$PY" benchmarks/compare_revisions.py --before-rev "$BEFORE" --mixed --batch-size "$B16" $SAB --threads 2 \
  --out "$OUT/ab_b16"
# 3. where the bf16 step's time goes, before and after (torch.profiler), and the floor's step
run profile_now "$PY" benchmarks/profile_step.py --variant quest-bf16 --batch-size "$B16" $SPROF --threads 2 --out "$OUT/profile_now"
run profile_before "$PY" benchmarks/profile_step.py --variant quest-bf16 --batch-size "$B16" $SPROF --threads 2 \
  --before-rev "$BEFORE" --out "$OUT/profile_before"
run profile_floor "$PY" benchmarks/profile_step.py --variant floor-bf16 --batch-size "$B16" $SPROF --threads 2 --out "$OUT/profile_floor"
# 4. a slice of one full-CIFAR-10 epoch (x0.25, batch 128, T = 4): train.py's pipeline with monitors and
#    validation in proportion vs SpikingJelly's bare loop, fp32 and bf16-mixed
run epoch_fp32 "$PY" benchmarks/bench_epoch.py $SEP --batch-size 128 --threads 2 --data "$NPZ" --out "$OUT/epoch_fp32"
run epoch_bf16 "$PY" benchmarks/bench_epoch.py $SEPB --batch-size 128 --threads 2 --precision bf16-mixed --data "$NPZ" \
  --out "$OUT/epoch_bf16"
# 5. the same slices with the opt-in compiled scan backward (module.compile_scan=true)
run epoch_fp32_compiled "$PY" benchmarks/bench_epoch.py $SEPB --batch-size 128 --threads 2 --compile-scan --data "$NPZ" \
  --out "$OUT/epoch_fp32_compiled"
run epoch_bf16_compiled "$PY" benchmarks/bench_epoch.py $SEPB --batch-size 128 --threads 2 --precision bf16-mixed \
  --compile-scan --data "$NPZ" --out "$OUT/epoch_bf16_compiled"
echo "total $(( $(date +%s) - START )) s" | tee -a "$LOG"

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
rows = ["| quantity | value | load average (start -> end) |", "| --- | ---: | --- |"]
for path in sorted(out.glob("step_b*.json"), key=lambda p: int(p.stem[6:])):
    r = load(path.stem)
    res, load_ = r["results"], f"{r['load_average']['start']} -> {r['load_average']['end']}"
    b = r["config"]["batch_size"]
    q = res["quest-bf16"]
    rows.append(f"| quest-bf16 / floor-bf16, batch {b} | {q['time_over_floor_bf16']:.2f}x | {load_} |")
    if "spikingjelly-bf16" in res:
        rows.append(f"| quest-bf16 / spikingjelly-bf16, batch {b} | {res['spikingjelly-bf16']['quest_bf16_time_over_this']:.2f}x | {load_} |")
    if "quest-compiled-bf16" in res:
        qc = res["quest-compiled-bf16"]
        rows.append(f"| quest-compiled-bf16 / floor-bf16, batch {b} | {qc['time_over_floor_bf16']:.2f}x | {load_} |")
        if "time_over_spikingjelly_bf16" in qc:
            rows.append(f"| quest-compiled-bf16 / spikingjelly-bf16, batch {b} | {qc['time_over_spikingjelly_bf16']:.2f}x | {load_} |")
    rows.append(f"| median step ms, batch {b}: quest-bf16 / floor-bf16 / spikingjelly-bf16 / quest fp32 | "
                f"{q['median_ms']:.0f} / {res['floor-bf16']['median_ms']:.0f} / "
                f"{res.get('spikingjelly-bf16', {}).get('median_ms', float('nan')):.0f} / {res['quest']['median_ms']:.0f} | {load_} |")
    m = r["monitor"]
    if "update_ms" in m:
        rows.append(f"| monitor update, batch {b}: ms, % of fp32 step, % of bf16 step | {m['update_ms']:.1f} ms, "
                    f"{m['update_pct_of_step']:.1f}%, {m.get('update_pct_of_bf16_step', float('nan')):.1f}% | {load_} |")
ab = load("ab_b16")
if ab:
    rows.append(f"| bf16 step now / before ({ab['before_rev']}), batch {ab['batch_size']} | {ab['ratios']['now/before']:.2f}x | "
                f"{ab['load_average']['start']} -> {ab['load_average']['end']} |")
for name in ("epoch_fp32", "epoch_bf16", "epoch_fp32_compiled", "epoch_bf16_compiled"):
    e = load(name)
    if not e:
        rows.append(f"| {name} | not measured (see {name}.log) | |")
        continue
    res, c = e["results"], e["config"]
    c["precision"] += ", compiled scan backward" if c.get("compile_scan") else ""
    q = res["quest"]
    if "prorated_time_over_spikingjelly" in q:
        rows.append(f"| epoch slice {c['precision']}: QUEST time / SJ time with the layer-health measurements prorated | "
                    f"{q['prorated_time_over_spikingjelly']:.2f}x | {e['load_average']['start']} -> {e['load_average']['end']} |")
    line = f"| epoch slice {c['precision']}: images/s QUEST (pipeline, monitors) / SpikingJelly (bare loop)"
    sj = res.get("spikingjelly", {}).get("images_per_s")
    ratio = res["quest"].get("spikingjelly_images_per_s_over_quest")
    val = f"{res['quest']['images_per_s']:.1f} / {sj:.1f}; QUEST time / SJ time {ratio:.2f}x" if sj and ratio else f"{res['quest']['images_per_s']:.1f} / -"
    rows.append(f"{line} | {val} | {e['load_average']['start']} -> {e['load_average']['end']} |")
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
