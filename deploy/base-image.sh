#!/usr/bin/env bash
# Builds the Debian 12 (bookworm) base image the Dockerfile starts from,
# from Debian's archive alone: debootstrap (minbase) into a temporary folder,
# then `podman import`. Nothing comes from a container registry, so the image
# builds wherever deb.debian.org (or DSM_DEBIAN_MIRROR) is reachable.
#
#   deploy/base-image.sh [IMAGE]      (default localhost/dsm-base:bookworm)
#   podman build --build-arg DEBIAN_IMAGE=localhost/dsm-base:bookworm \
#                --build-arg DEBIAN_SLIM_IMAGE=localhost/dsm-base:bookworm -t dsm:cpu .
#
# Cached: an IMAGE that already exists is kept (remove it to rebuild). Needs
# root, debootstrap and podman. Exit 0 with the image in place, 1 otherwise.
set -euo pipefail
IMAGE="${1:-localhost/dsm-base:bookworm}"
MIRROR="${DSM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DSM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

if podman image exists "$IMAGE"; then
  echo "base image: $IMAGE (already there)"
  exit 0
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "base image: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "base image: debootstrap needs root" >&2; exit 1; }

root="$(mktemp -d /var/tmp/dsm-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
started=$SECONDS
echo "base image: debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" > "$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; rm -f "$root.log"; echo "base image: debootstrap failed" >&2; exit 1; }
rm -f "$root.log"
# The sources of Debian's own bookworm image: the release, its updates and
# security fixes.
rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# What a container image does without: downloaded packages, package lists.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
tar --numeric-owner -C "$root" -c . |
  podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase bookworm $MIRROR" - "$IMAGE" > /dev/null
echo "base image: $IMAGE built in $((SECONDS - started)) s ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
