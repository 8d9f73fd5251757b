#!/usr/bin/env bash
# The GRPO training-step benchmark in one command: builds dsm_grpo_bench, writes
# the ~27M-parameter benchmark model (bench/make_model.py) and the fixed inputs
# (a LoRA r=16 adapter + a batch of 8 groups x 8 samples of 64 + 64 tokens:
# dsm_grpo_bench --write-inputs), then per round measures the torch::mm peak
# (ours and Python's) and runs our Trainer::Step and the HF-style Python eager
# step (bench/grpo_eager.py) back to back, in alternating order, with the same
# thread count; bench/grpo_report.py renders the tables of BENCHMARKS.md.
#
#   bench/run_grpo_bench.sh [BUILD_DIR] [--threads 2] [--rounds 3] [--steps 2]
#                           [--groups 8] [--group-size 8] [--prompt 64] [--completion 64]
#                           [--jobs 2] [--wait-load L] [--out PREFIX]
#
# Each process takes one warm-up step and then --steps timed steps (the
# adapter keeps training from step to step; both sides start from the same
# adapter, so their step-k losses must agree). --wait-load L waits (up to 30
# minutes) before each round for the 1-minute load average to fall below L.
# Outputs: bench/results/grpo_bench.{jsonl,md} (override with --out PREFIX).
# Needs: the LibTorch build deps and /usr/bin/python3 with torch + numpy
# (Debian python3-torch).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$SRC/build-bench"
if [[ $# -gt 0 && "$1" != --* ]]; then BUILD="$(realpath -m "$1")"; shift; fi
THREADS=2
ROUNDS=3
STEPS=2
GROUPS_=8
GROUP_SIZE=8
PROMPT=64
COMPLETION=64
JOBS=2
WAIT_LOAD=
OUT="$SRC/bench/results/grpo_bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --groups) GROUPS_="$2"; shift 2 ;;
    --group-size) GROUP_SIZE="$2"; shift 2 ;;
    --prompt) PROMPT="$2"; shift 2 ;;
    --completion) COMPLETION="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --wait-load) WAIT_LOAD="$2"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    *) echo "run_grpo_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-/usr/bin/python3}"  # Debian's python3-torch lives in the system Python
"$PYTHON" -c 'import torch, numpy' 2>/dev/null || {
  echo "run_grpo_bench.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2; exit 1; }

log() { echo "[run_grpo_bench] $*" >&2; }

# ---- build
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSM_BUILD_TESTS=OFF >&2
fi
ninja -C "$BUILD" -j"$JOBS" dsm_grpo_bench >&2
BIN="$BUILD/bench/dsm_grpo_bench"

# ---- inputs
DATA="$BUILD/bench-data"
INPUTS="$DATA/grpo"
mkdir -p "$DATA" "$(dirname "$OUT")"
RAW="$OUT.jsonl"
: > "$RAW"
"$PYTHON" "$SRC/bench/make_model.py" "$DATA/model" >> "$RAW"
export OMP_NUM_THREADS="$THREADS"
"$BIN" --model "$DATA/model" --inputs "$INPUTS" --write-inputs --threads "$THREADS" --groups "$GROUPS_" \
  --group-size "$GROUP_SIZE" --prompt "$PROMPT" --completion "$COMPLETION" >> "$RAW"

# ---- machine facts
load() { cut -d' ' -f1-3 /proc/loadavg; }
wait_quiet() {
  [[ -n "$WAIT_LOAD" ]] || return 0
  for _ in $(seq 180); do
    awk -v max="$WAIT_LOAD" '{ exit !($1 < max) }' /proc/loadavg && return 0
    log "waiting for the load average ($(load)) to fall below $WAIT_LOAD"
    sleep 10
  done
}
wait_quiet
LOAD_START="$(load)"
"$PYTHON" - "$THREADS" "$LOAD_START" >> "$RAW" <<'EOF'
import json, os, subprocess, sys, datetime, torch
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
blas = os.path.basename(os.path.dirname(os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")))
print(json.dumps({"kind": "machine", "cpu": cpu, "cores": os.cpu_count(), "threads": int(sys.argv[1]),
                  "libtorch": sh("dpkg-query -W -f='${Version}' libtorch-dev") or "?",
                  "python_torch": torch.__version__, "blas": blas, "load_start": sys.argv[2],
                  "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")}))
EOF
log "load average at start: $LOAD_START"

# ---- the run
ours() {
  log "round $round: ours (Trainer::Step)"
  "$BIN" --model "$DATA/model" --inputs "$INPUTS" --what step --threads "$THREADS" --steps "$STEPS" | tee -a "$RAW" >&2
}
python_eager() {
  log "round $round: Python eager"
  "$PYTHON" "$SRC/bench/grpo_eager.py" --model "$DATA/model" --inputs "$INPUTS" --threads "$THREADS" \
    --steps "$STEPS" | tee -a "$RAW" >&2
}
for round in $(seq "$ROUNDS"); do
  (( round == 1 )) || wait_quiet
  log "round $round: matmul peaks; load $(load)"
  "$BIN" --model "$DATA/model" --inputs "$INPUTS" --what peak --threads "$THREADS" | tee -a "$RAW" >&2
  "$PYTHON" "$SRC/bench/hf_eager.py" --model "$DATA/model" --batches "" --threads "$THREADS" --reps 5 \
    | tee -a "$RAW" >&2
  if (( round % 2 )); then ours; python_eager; else python_eager; ours; fi
done

LOAD_END="$(load)"
echo "{\"kind\": \"load_end\", \"load_end\": \"$LOAD_END\"}" >> "$RAW"
CMD="bench/run_grpo_bench.sh --threads $THREADS --rounds $ROUNDS --steps $STEPS --groups $GROUPS_ --group-size $GROUP_SIZE --prompt $PROMPT --completion $COMPLETION"
[[ -z "$WAIT_LOAD" ]] || CMD+=" --wait-load $WAIT_LOAD"
"$PYTHON" "$SRC/bench/grpo_report.py" "$RAW" --command "$CMD" > "$OUT.md"
log "load average at end: $LOAD_END; wrote $RAW and $OUT.md"
cat "$OUT.md"
