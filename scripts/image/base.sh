#!/usr/bin/env bash
# Build the image's base without a registry: a minimal Debian 12 (bookworm) rootfs from Debian's own
# packages (debootstrap), slimmed, then `docker import`ed as forescale-base:<recipe hash>.
#
# Idempotent: the tag is a hash of this script, so an unchanged recipe reuses the image already in the
# daemon; editing the script (suite, packages, slimming) builds a new one. Prints the tag on stdout.
# Needs root (debootstrap chroots) and debootstrap (apt-get install debootstrap; scripts/ci/setup.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."

SUITE=bookworm                                  # Debian 12; security fixes: see docs/operations.md
MIRROR="${FORESCALE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3,ca-certificates                # python3 = Debian's 3.11; the venv needs nothing else
REPO=forescale-base
tag="$REPO:$SUITE-$(sha256sum "$0" | cut -c1-12)"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "image/base: debootstrap needs root (or load an existing $tag)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "image/base: apt-get install debootstrap" >&2; exit 1; }

work="$(mktemp -d /tmp/forescale-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
start=$SECONDS
echo "image/base: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR" >&2
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  echo "image/base: debootstrap failed (full log above)" >&2
  exit 1
fi
echo "image/base: debootstrap took $((SECONDS - start))s" >&2

# debootstrap copies the host's resolver and hostname: never ship them (Docker mounts its own at run time).
: > "$rootfs/etc/resolv.conf"
echo localhost > "$rootfs/etc/hostname"
# What went in, for the record (the image carries it; `make image` prints the Debian release).
# shellcheck disable=SC2016  # ${Package} is dpkg-query's format, not the shell's
chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' > "$rootfs/usr/share/forescale-base-packages.txt" \
  2>/dev/null || true
debian_version="$(cat "$rootfs/etc/debian_version")"
# Slim: package caches and lists, docs, man pages, locales (the image speaks C.UTF-8), logs. The
# stdlib's byte-code stays: the non-root user could not write it, and every start would recompile.
# Each package's copyright file stays (licence notices), as in Debian's own slim images.
find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/*

tar --numeric-owner --xattrs -C "$rootfs" -cf "$work/rootfs.tar" .
docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.opencontainers.image.title=forescale-base" \
  --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
  --change "LABEL org.opencontainers.image.version=debian-$debian_version" \
  --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE ($debian_version)" \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "image/base: $tag (Debian $debian_version) in $((SECONDS - start))s" >&2
echo "$tag"
