#!/usr/bin/env bash
# The adapter-streaming benchmark in one command: builds dsm_stream_bench and
# runs it (a 10.0M-parameter fp32 adapter, 39.98 MB, streamed by the real
# AdapterPublisher + WatchAdapters reactor from a GrpcServer, bytes over its
# bulk endpoint (the default path) and in chunks (the in-band path), to 8 real
# AdapterSubscribers on loopback, against one sender thread copying the same
# bytes to 8 receiver threads over plain loopback TCP; rounds interleaved),
# then renders the table of BENCHMARKS.md with bench/stream_report.py.
#
#   bench/run_stream_bench.sh [BUILD_DIR] [--rounds 10] [--subscribers 8] [--rank 4]
#                             [--jobs 2] [--wait-load L] [--out PREFIX]
#
# Outputs: bench/results/stream_bench.{jsonl,md} (override with --out PREFIX).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$SRC/build-bench"
if [[ $# -gt 0 && "$1" != --* ]]; then BUILD="$(realpath -m "$1")"; shift; fi
ROUNDS=10
SUBSCRIBERS=8
RANK=4
JOBS=2
WAIT_LOAD=
OUT="$SRC/bench/results/stream_bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --subscribers) SUBSCRIBERS="$2"; shift 2 ;;
    --rank) RANK="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --wait-load) WAIT_LOAD="$2"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    *) echo "run_stream_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[run_stream_bench] $*" >&2; }

if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSM_BUILD_TESTS=OFF >&2
fi
ninja -C "$BUILD" -j"$JOBS" dsm_stream_bench >&2

load() { cut -d' ' -f1-3 /proc/loadavg; }
if [[ -n "$WAIT_LOAD" ]]; then
  for _ in $(seq 180); do
    awk -v max="$WAIT_LOAD" '{ exit !($1 < max) }' /proc/loadavg && break
    log "waiting for the load average ($(load)) to fall below $WAIT_LOAD"
    sleep 10
  done
fi
mkdir -p "$(dirname "$OUT")"
RAW="$OUT.jsonl"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "{\"kind\": \"machine\", \"cpu\": \"$CPU\", \"cores\": $(nproc), \"load_start\": \"$(load)\", \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\"}" > "$RAW"
log "load average at start: $(load)"
"$BUILD/bench/dsm_stream_bench" --rounds "$ROUNDS" --subscribers "$SUBSCRIBERS" --rank "$RANK" | tee -a "$RAW" >&2
echo "{\"kind\": \"load_end\", \"load_end\": \"$(load)\"}" >> "$RAW"
CMD="bench/run_stream_bench.sh --rounds $ROUNDS --subscribers $SUBSCRIBERS --rank $RANK"
[[ -z "$WAIT_LOAD" ]] || CMD+=" --wait-load $WAIT_LOAD"
python3 "$SRC/bench/stream_report.py" "$RAW" --command "$CMD" > "$OUT.md"
log "load average at end: $(load); wrote $RAW and $OUT.md"
cat "$OUT.md"
