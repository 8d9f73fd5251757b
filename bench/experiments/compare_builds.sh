#!/usr/bin/env bash
# Decode throughput of two builds of dsm_model_bench (e.g. main and a patched
# model/) and of the Python eager baseline, back to back in one run:
#
#   bench/experiments/compare_builds.sh BASE_BUILD PATCHED_BUILD [--threads 2] [--rounds 2]
#
# A patched build, e.g. of bench/experiments/decode_fast_paths.patch (made
# against model/ as of commit 16b08e4):
#   git worktree add /tmp/dsm-exp && git -C /tmp/dsm-exp apply "$PWD/bench/experiments/decode_fast_paths.patch"
#   cmake -S /tmp/dsm-exp -B /tmp/dsm-exp/build -G Ninja -DDSM_BUILD_TESTS=OFF
#   ninja -C /tmp/dsm-exp/build -j2 dsm_model_bench
#
# Both builds must have run bench/run_model_bench.sh's inputs (the model lives
# in BASE_BUILD/bench-data/model). Prints, per batch size, decode tok/s of each
# build (fresh and reused Sampler) and its ratio to Python eager; the best of
# all rounds counts. See BENCHMARKS.md ("Measured: the fixes, applied").
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="$(realpath "$1")"; PATCHED="$(realpath "$2")"; shift 2
THREADS=2; ROUNDS=2; BATCHES="1 8 32 64"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --batches) BATCHES="${2//,/ }"; shift 2 ;;
    *) echo "compare_builds.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-/usr/bin/python3}"
MODEL="$BASE/bench-data/model"
export OMP_NUM_THREADS="$THREADS"
RAW="$(mktemp)"
for round in $(seq "$ROUNDS"); do
  for b in $BATCHES; do
    echo "[compare_builds] round $round, batch $b" >&2
    for v in base patched; do
      dir=$BASE; [[ $v == patched ]] && dir=$PATCHED
      "$dir/bench/dsm_model_bench" --model "$MODEL" --what prefill,decode --batches "$b" --threads "$THREADS" \
        --reps 2 | sed "s/^{/{\"variant\":\"$v\",/" >> "$RAW"
    done
    "$PYTHON" "$SRC/bench/hf_eager.py" --model "$MODEL" --batches "$b" --threads "$THREADS" --reps 2 --peak-n 0 \
      | sed 's/^{/{"variant":"python",/' >> "$RAW"
  done
done
"$PYTHON" - "$RAW" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def best(v, kind, b, key="seconds"):
    c = [r for r in rows if r["variant"] == v and r["kind"] == kind and r["batch"] == b and key in r]
    return min(c, key=lambda r: r[key]) if c else None
print("| batch | Python eager tok/s | base tok/s | ratio | base, reused sampler | ratio | patched tok/s | ratio "
      "| patched, reused sampler | ratio | prefill logits max abs diff |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b in sorted({r["batch"] for r in rows if "batch" in r}):
    py = best("python", "decode", b)["tok_s"]
    cells = [f"{py:,.0f}"]
    for v in ("base", "patched"):
        f = best(v, "decode", b)["tok_s"]
        r = best(v, "decode", b, "reused_seconds")["reused_tok_s"]
        cells += [f"{f:,.0f}", f"{f / py:.2f}×", f"{r:,.0f}", f"{r / py:.2f}×"]
    pb, pp = best("base", "prefill", b), best("patched", "prefill", b)
    cells.append(f"{max(abs(x - y) for x, y in zip(pb['probe'], pp['probe'])):.1e}")
    print(f"| {b} | " + " | ".join(cells) + " |")
PY
rm -f "$RAW"
