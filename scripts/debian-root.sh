#!/bin/bash
# debian-root.sh OUTDIR — build a minimal Debian bookworm root file system for
# keel's end-to-end QEMU tests and write it to OUTDIR/debian-root.tar.
#
# The root boots systemd to multi-user.target as fast as TCG allows: minbase plus
# systemd-sysv and udev, no getty, no first-boot prompts, and a oneshot unit that
# prints "KEEL-SYSTEMD: multi-user reached" on /dev/console once the target is
# reached, so tests can wait for it. RAUC (rauc, and rauc-service for its D-Bus
# activated rauc.service) is there for the update-agent scenario (docs/rauc.md).
#
# Caching: the tarball is keyed by the sha256 of this script and the files it
# shares with deb-image.sh (the marker unit, test-root.dpkg.cfg,
# test-root-hooks/). When
# $KEEL_CACHE_DIR/debian-root-<hash>.tar exists and $CI is empty it is reused;
# CI always builds from scratch (a cache must never hide a broken build).
#
# Environment: KEEL_CACHE_DIR (cache directory, optional), KEEL_DEBIAN_MIRROR
# (overrides the mirror taken from the host's apt sources), CI.
set -euo pipefail

die() { echo "debian-root.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: debian-root.sh OUTDIR"
outdir=$1
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"

here=$(cd "$(dirname "$0")" && pwd)
script_hash=$(cat "$0" "$here/keel-test-marker.service" "$here/test-root.dpkg.cfg" "$here"/test-root-hooks/* | sha256sum | cut -c1-16)
out="$outdir/debian-root.tar"
cached="${KEEL_CACHE_DIR:+$KEEL_CACHE_DIR/debian-root-$script_hash.tar}"
mkdir -p "$outdir"

if [ -n "$cached" ] && [ -f "$cached" ] && [ -z "${CI:-}" ]; then
	echo "debian-root.sh: reusing $cached" >&2
	cp --reflink=auto "$cached" "$out.tmp"
	mv "$out.tmp" "$out"
	exit 0
fi

mirror=${KEEL_DEBIAN_MIRROR:-$("$here/host-mirror.sh")}
mirror=${mirror:-http://deb.debian.org/debian}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
# test-root.dpkg.cfg and test-root-hooks/ are shared with deb-image.sh (the
# marker unit, no getties, a fixed machine-id). The merged-usr hook installs
# usr-is-merged instead of usrmerge, which would pull in 45 MiB of perl.
mmdebstrap --quiet --variant=minbase --mode=auto --format=tar \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--hook-dir="$here/test-root-hooks" \
	--include=systemd-sysv,udev,rauc,rauc-service \
	--dpkgopt="$here/test-root.dpkg.cfg" \
	--aptopt='Acquire::Languages "none"' \
	bookworm "$out.tmp" "$mirror"
mv "$out.tmp" "$out"
echo "debian-root.sh: built $out ($(($(stat -c %s "$out") >> 20)) MiB) in $(($(date +%s) - start)) s from $mirror" >&2

if [ -n "$cached" ]; then
	mkdir -p "$KEEL_CACHE_DIR"
	cp --reflink=auto "$out" "$cached.tmp.$$"
	mv "$cached.tmp.$$" "$cached"
fi
