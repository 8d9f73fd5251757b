#!/usr/bin/env bash
# README command 2: all set-up, the build, and the whole test suite.
# Usage: scripts/test.sh [--slow] [extra ctest arguments]
#   --slow   also run tests labelled `slow` (container end-to-end runs)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${DSM_BUILD_DIR:-build}"
scripts/setup.sh "$BUILD_DIR"

args=(--output-on-failure --timeout 900 -j "$(nproc)")
if [[ "${1:-}" == "--slow" ]]; then
  shift
else
  args+=(-LE slow)
fi
ctest --test-dir "$BUILD_DIR" "${args[@]}" "$@"
