#!/usr/bin/env bash
# README command 1: all set-up, the build, then the main job on the built-in
# default (configs/tiny.yaml). Extra arguments go to `dsm run`.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${DSM_BUILD_DIR:-build}"
scripts/setup.sh "$BUILD_DIR"
exec "$BUILD_DIR/dsm" run configs/tiny.yaml "$@"
