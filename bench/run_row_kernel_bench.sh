#!/usr/bin/env bash
# The sampler's row kernels (model/row_kernels.h, model/cached_attention.h) on a model the
# size of the built-in one, in one run: greedy decode through dsm's Sampler with the row kernels,
# the same with LibTorch's kernels (DSM_ROW_KERNELS=0), and the Hugging Face-style Python eager
# baseline (bench/hf_eager.py), back to back per batch size, plus both sides' matmul peak; then a
# markdown table of tokens/s and ratios. Same thread count everywhere; the best of --reps.
#
#   bench/run_row_kernel_bench.sh MODEL_DIR [BUILD_DIR] [--threads 1] [--batches 1,8,64]
#                                 [--prompt 100] [--decode 100] [--reps 3]
#
# MODEL_DIR: a Hugging Face folder, e.g. runs/tiny/model after `dsm run configs/tiny.yaml`.
# Needs BUILD_DIR/bench/dsm_model_bench (build-lt by default) and /usr/bin/python3 with torch.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 1 && "$1" != --* ]] || { echo "usage: $0 MODEL_DIR [BUILD_DIR] [--threads N] ..." >&2; exit 2; }
MODEL="$1"; shift
BUILD="$SRC/build-lt"
if [[ $# -gt 0 && "$1" != --* ]]; then BUILD="$(realpath -m "$1")"; shift; fi
THREADS=1 BATCHES=1,8,64 PROMPT=100 DECODE=100 REPS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --batches) BATCHES="$2"; shift 2 ;;
    --prompt) PROMPT="$2"; shift 2 ;;
    --decode) DECODE="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    *) echo "run_row_kernel_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
BIN="$BUILD/bench/dsm_model_bench"
[[ -x "$BIN" ]] || { echo "run_row_kernel_bench.sh: $BIN not built" >&2; exit 1; }
[[ -f "$MODEL/config.json" ]] || { echo "run_row_kernel_bench.sh: $MODEL has no config.json" >&2; exit 2; }
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
common=(--model "$MODEL" --threads "$THREADS" --prompt "$PROMPT" --decode "$DECODE" --reps "$REPS")
"$BIN" "${common[@]}" --what peak --batches 1 > "$OUT/peak.jsonl"
IFS=, read -ra sizes <<< "$BATCHES"
for b in "${sizes[@]}"; do
  "$BIN" "${common[@]}" --what decode --batches "$b" | sed 's/^{/{"side":"rows",/' >> "$OUT/runs.jsonl"
  DSM_ROW_KERNELS=0 "$BIN" "${common[@]}" --what decode --batches "$b" | sed 's/^{/{"side":"libtorch",/' >> "$OUT/runs.jsonl"
  /usr/bin/python3 "$SRC/bench/hf_eager.py" "${common[@]}" --batches "$b" --peak-n 0 | sed 's/^{/{"side":"python",/' >> "$OUT/runs.jsonl"
done
/usr/bin/python3 - "$OUT" "$THREADS" "$PROMPT" "$DECODE" "$MODEL" <<'PY'
import json, sys
out, threads, prompt, decode, model = sys.argv[1:6]
c = json.load(open(f"{model}/config.json"))
h, layers, heads, kv = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]
hd = c.get("head_dim") or h // heads
# FLOPs of one decoded token: the matrix products (2 per weight) and attention over the keys
# seen on average (q·k and p·v: 4 per head dimension and key).
weights = layers * (h * heads * hd * 2 + 2 * h * kv * hd + 3 * h * c["intermediate_size"]) + h * c["vocab_size"]
flop_per_token = 2 * weights + 4 * layers * heads * hd * (int(prompt) + int(decode) / 2)
peak = [json.loads(l) for l in open(f"{out}/peak.jsonl")]
mm = max((p["flops"] for p in peak if p.get("kind") == "mm_peak" and "flops" in p), default=None)
rows = [json.loads(l) for l in open(f"{out}/runs.jsonl")]
dec = {}
for r in rows:
    if r.get("kind") == "decode":
        dec[(r["side"], r["batch"])] = r["tok_s"]
print(f"Greedy decode, prompt {prompt}, {decode} steps, {threads} thread(s); tokens/s (best of the reps):\n")
print("| batch | row kernels | LibTorch kernels (`DSM_ROW_KERNELS=0`) | Python eager | rows / LibTorch | rows / Python | rows, share of the matmul peak |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for b in sorted({k[1] for k in dec}):
    r, l, p = dec.get(("rows", b)), dec.get(("libtorch", b)), dec.get(("python", b))
    share = f"{r * flop_per_token / mm:.1%}" if mm else "n/a"
    print(f"| {b} | {r:,.0f} | {l:,.0f} | {p:,.0f} | {r / l:.2f}× | {r / p:.2f}× | {share} |")
if mm:
    print(f"\nmatmul peak (torch::mm 2048², same threads): {mm / 1e9:.1f} GFLOP/s; {flop_per_token / 1e6:.2f} MFLOP a token")
PY
