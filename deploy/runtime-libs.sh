#!/usr/bin/env bash
# What the runtime image needs to run a dsm binary, found on the machine that
# built it (the Dockerfile's builder stage, or a Debian 12 host):
#
#   deploy/runtime-libs.sh BINARY OUT
#     OUT/dsm                    the binary
#     OUT/runtime-packages.txt   the Debian packages of the shared libraries it loads
#     OUT/lib/                   the libraries that come from no package (e.g.
#                                the CUDA LibTorch wheel's); the image puts them
#                                on LD_LIBRARY_PATH
#
# Set LD_LIBRARY_PATH first where the binary finds libraries that way. Exit 1
# when a library is not found.
set -euo pipefail
BINARY="$1"
OUT="$2"
mkdir -p "$OUT/lib"
cp "$BINARY" "$OUT/dsm"
if ldd "$BINARY" | grep -q "not found"; then
  echo "runtime-libs: $BINARY: $(ldd "$BINARY" | grep "not found" | tr -s ' \t' ' ' | paste -sd,)" >&2
  exit 1
fi
mapfile -t libs < <(ldd "$BINARY" | awk '/=> \//{print $3}' | sort -u)
# One dpkg query for every library (by its name and by its real path): "package:arch: path" lines.
owners="$(for lib in "${libs[@]}"; do echo "$lib"; readlink -f "$lib"; done | sort -u |
          xargs -r dpkg -S 2>/dev/null || true)"
: > "$OUT/runtime-packages.txt"
for lib in "${libs[@]}"; do
  real="$(readlink -f "$lib")"
  pkg="$(awk -v a="$lib" -v b="$real" '{p = $NF; sub(/(:[a-z0-9]+)?: .*$/, "")} p == a || p == b {print; exit}' <<< "$owners")"
  if [[ -n "$pkg" ]]; then
    echo "$pkg" >> "$OUT/runtime-packages.txt"
  else
    cp -L "$lib" "$OUT/lib/"
  fi
done
sort -u -o "$OUT/runtime-packages.txt" "$OUT/runtime-packages.txt"
echo "runtime packages: $(wc -l < "$OUT/runtime-packages.txt"); bundled libraries: $(find "$OUT/lib" -type f | wc -l)"
