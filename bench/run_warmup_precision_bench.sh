#!/usr/bin/env bash
# Phase 0's step time in float32 vs bfloat16 autocast (builtin.warmup_precision), the built-in
# tiny model and recipe, measured back to back in one run, alternating, twice each: a drill
# stretch (look-up drill steps, note only) and a mixed stretch (all three roles, no own
# proofs). Prints seconds per step and the float32 / bfloat16 ratio of the best of each.
#
#   bench/run_warmup_precision_bench.sh [BUILD_DIR] [STEPS]
#
# Needs BUILD_DIR/tests/tiny_warmup_test (the test build: build-lt by default).
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$SRC/build-lt}"
STEPS="${2:-300}"
BIN="$BUILD/tests/tiny_warmup_test"
[[ -x "$BIN" ]] || { echo "run_warmup_precision_bench.sh: $BIN not built" >&2; exit 1; }

run() {  # precision kind -> train seconds
  local drill=0
  [[ "$2" == drill ]] && drill=$STEPS
  DSM_WARMUP_EXPERIMENT=1 DSM_WARMUP_PRECISION="$1" DSM_WARMUP_STEPS="$STEPS" DSM_WARMUP_DRILL="$drill" \
    DSM_WARMUP_DRILL_EVERY=0 DSM_WARMUP_NOTE_ONLY=1 DSM_WARMUP_LEADING_ON=1 DSM_WARMUP_OWN=0 \
    DSM_WARMUP_EVAL=2 DSM_WARMUP_T1=0 DSM_WARMUP_PRINT_EVERY=1000000 DSM_SOURCE_DIR="$SRC" \
    "$BIN" --gtest_filter=TinyWarmup.Experiment | sed -n 's/^RESULT .*train_s=\([0-9.]*\).*/\1/p'
}

echo "| stretch | steps | float32 s/step | bfloat16 s/step | float32 / bfloat16 |"
echo "|---|---|---|---|---|"
for kind in drill mixed; do
  best_f=1e9 best_b=1e9
  for round in 1 2; do
    f=$(run float32 "$kind"); b=$(run bfloat16 "$kind")
    best_f=$(python3 -c "print(min($best_f, $f))"); best_b=$(python3 -c "print(min($best_b, $b))")
  done
  python3 -c "print(f'| $kind | $STEPS | {$best_f/$STEPS:.3f} | {$best_b/$STEPS:.3f} | {$best_f/$best_b:.2f} |')"
done
