#!/bin/bash
# deb-image.sh DEB OUTDIR — build a Debian bookworm root the Debian way, with
# keel's package as its initramfs generator, for the QEMU scenario
# qemu-tests/deb_test.go:
#
#   mmdebstrap --include=DEB,linux-image-amd64,systemd-sysv,udev …
#
# apt installs keel (it provides linux-initramfs-tool, which the kernel
# package depends on), and the kernel's postinst runs
# /etc/kernel/postinst.d/keel, which builds /boot/initrd.img-KVER with keel's
# mkinitrd: nobody calls mkinitrd by hand here. Writes
# OUTDIR/deb-root.tar (the tree), OUTDIR/linux-image.deb (the kernel package
# apt installed, so a test can reinstall it) and OUTDIR/deb-image.log (what
# the package scripts printed, keel's hook lines among them).
#
# The root boots systemd to multi-user.target: test-root-hooks/ (shared with
# scripts/debian-root.sh) install keel-test-marker.service, which prints
# "KEEL-SYSTEMD: multi-user reached" on /dev/console then. To keep the tree small, kernel modules a virtio VM
# never needs (sound, GPUs, network and media drivers, …) are path-excluded;
# the kernel postinst's depmod sees the tree as it is.
#
# Caching: keyed by this script and the .deb's sha256; reused from
# $KEEL_CACHE_DIR unless $CI is set (CI always builds from scratch).
#
# Environment: KEEL_CACHE_DIR, KEEL_DEBIAN_MIRROR, CI (as scripts/debian-root.sh).
set -euo pipefail

die() { echo "deb-image.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: deb-image.sh DEB OUTDIR"
deb=$(realpath "$1") outdir=$2
[ -f "$deb" ] || die "$1: no such package (make deb builds it)"
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
here=$(cd "$(dirname "$0")" && pwd)

# The key is what the image depends on: this script, the marker unit, and
# the package's files, maintainer scripts and relations, not its version
# (which names the commit) nor its docs (path-excluded below).
key=$( {
	cat "$0" "$here/keel-test-marker.service" "$here/test-root.dpkg.cfg" "$here"/test-root-hooks/*
	dpkg-deb -f "$deb" Provides Conflicts Depends
	for f in postinst postrm md5sums; do dpkg-deb -I "$deb" "$f" 2>/dev/null | grep -v ' usr/share/doc/' || true; done
} | sha256sum | cut -c1-16)
outputs=(deb-root.tar linux-image.deb deb-image.log)
cached="${KEEL_CACHE_DIR:+$KEEL_CACHE_DIR/deb-image-$key}"
mkdir -p "$outdir"

if [ -n "$cached" ] && [ -f "$cached/deb-root.tar" ] && [ -z "${CI:-}" ]; then
	echo "deb-image.sh: reusing $cached" >&2
	for f in "${outputs[@]}"; do cp --reflink=auto "$cached/$f" "$outdir/$f"; done
	exit 0
fi

mirror=${KEEL_DEBIAN_MIRROR:-$("$here/host-mirror.sh")}
mirror=${mirror:-http://deb.debian.org/debian}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt (outside the chroot) takes a local package by its path and hands the
# same path to dpkg (inside): a setup hook copies it there, and a customize
# hook removes the copy.
cp "$deb" "$tmp/keel.deb"
chmod 755 "$tmp"
chmod 644 "$tmp/keel.deb"


# Module trees a virtio VM never loads; patterns match the kernel package's
# paths (/lib/modules/KVER/kernel/…).
excludes=()
for d in sound drivers/gpu drivers/media drivers/net drivers/staging drivers/infiniband \
	drivers/iio drivers/hid drivers/input drivers/bluetooth drivers/isdn drivers/hwmon \
	drivers/mfd drivers/video drivers/comedi drivers/power drivers/platform drivers/misc \
	drivers/mmc drivers/mtd drivers/leds drivers/i2c drivers/spi drivers/gpio drivers/pinctrl \
	drivers/thunderbolt drivers/w1 drivers/target drivers/atm drivers/nfc drivers/rtc \
	net/wireless net/bluetooth net/mac80211 net/netfilter net/ipv6 net/sunrpc fs/nfs fs/nfsd \
	fs/ocfs2 fs/gfs2 fs/ceph fs/smb fs/xfs; do
	excludes+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$d/*")
done

start=$(date +%s)
# Build in memory when there is room: on a busy shared disk, unpacking the
# essential packages alone took minutes. Unsafe I/O (no fsync per file) is
# fine for a tree that is tarred and thrown away.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((3 << 20)) ]; then
	export TMPDIR=/dev/shm
fi
mmdebstrap --variant=minbase --mode=auto --format=tar \
	--verbose \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--hook-dir="$here/test-root-hooks" \
	--include="$tmp/keel.deb" --include=linux-image-amd64,systemd-sysv,udev \
	--aptopt='APT::Install-Recommends "false"' \
	--aptopt='Acquire::Languages "none"' \
	--dpkgopt=force-unsafe-io \
	--dpkgopt="$here/test-root.dpkg.cfg" \
	--dpkgopt='path-exclude=/lib/firmware/*' \
	"${excludes[@]}" \
	--setup-hook="mkdir -p \"\$1$tmp\" && cp '$tmp/keel.deb' \"\$1$tmp/\"" \
	--customize-hook="cp \"\$1\"/var/cache/apt/archives/linux-image-[0-9]*.deb '$tmp/linux-image.deb'" \
	--customize-hook="rm -rf \"\$1$tmp\"" \
	bookworm "$tmp/deb-root.tar" "$mirror" 2>&1 | tee "$tmp/deb-image.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || die "mmdebstrap failed (log above)"
for f in "${outputs[@]}"; do mv "$tmp/$f" "$outdir/$f"; done
echo "deb-image.sh: built $outdir/deb-root.tar ($(($(stat -c %s "$outdir/deb-root.tar") >> 20)) MiB) in $(($(date +%s) - start)) s from $mirror" >&2

if [ -n "$cached" ]; then
	mkdir -p "$cached.tmp.$$"
	for f in "${outputs[@]}"; do cp --reflink=auto "$outdir/$f" "$cached.tmp.$$/$f"; done
	rm -rf "$cached"
	mv "$cached.tmp.$$" "$cached"
fi
