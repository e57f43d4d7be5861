#!/bin/bash
# build-deb.sh ROOT OUTDIR — turn ROOT, keel as `make install DESTDIR=ROOT
# PREFIX=/usr` left it, into OUTDIR/keel_VERSION_amd64.deb with dpkg-deb.
# `make deb` runs it; docs/integration.md describes the package.
#
# It adds what only the package has (the kernel hooks, the kernel-install
# plugin, /etc/keel/mkinitrd.conf, every unit in systemd/, the docs, the
# copyright, the changelog, lintian overrides and the maintainer scripts),
# writes DEBIAN/control, conffiles and md5sums, and sets every mtime to
# SOURCE_DATE_EPOCH (default: the commit time), so one commit gives one .deb.
#
# VERSION: packaging/version, plus +gitN.HASH (N commits, HASH the commit)
# when built from a git checkout, plus the Debian revision -1.
set -euo pipefail

die() { echo "build-deb.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: build-deb.sh ROOT OUTDIR"
root=$1 outdir=$2
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
for f in usr/bin/mkinitrd usr/bin/slotctl usr/lib/keel/init; do
	[ -x "$root/$f" ] || die "$root/$f: missing, expected make install DESTDIR=$root PREFIX=/usr to have put it there"
done

version=$(cat "$here/version")
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	version+="+git$(git -C "$src" rev-list --count HEAD).$(git -C "$src" rev-parse --short=7 HEAD)"
	: "${SOURCE_DATE_EPOCH:=$(git -C "$src" log -1 --format=%ct)}"
fi
version+=-1
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
maintainer="keel maintainers <maintainers@users.noreply.h-seed-e9e73b01.example>"

umask 022
# The package's own files; /etc ones are conffiles.
install -D -m 0755 "$here/kernel-postinst" "$root/etc/kernel/postinst.d/keel"
install -D -m 0755 "$here/kernel-postrm" "$root/etc/kernel/postrm.d/keel"
install -D -m 0644 "$here/mkinitrd.conf" "$root/etc/keel/mkinitrd.conf"
install -D -m 0755 "$here/50-keel.install" "$root/usr/lib/kernel/install.d/50-keel.install"
for unit in "$src"/systemd/*; do
	case $unit in *.service | *.target | *.timer | *.path | *.socket) ;; *) continue ;; esac
	install -D -m 0644 "$unit" "$root/usr/lib/systemd/system/${unit##*/}"
done
doc=$root/usr/share/doc/keel
install -D -m 0644 "$here/copyright" "$doc/copyright"
install -D -m 0644 "$src/README.md" "$doc/README.md"
for f in "$src"/docs/*.md; do install -D -m 0644 "$f" "$doc/${f##*/}"; done
# Policy 12.3: documentation over 4 kB is compressed (as dh_compress does).
find "$doc" -name '*.md' -size +4k -exec gzip -9nf {} +
cat >"$doc/changelog.Debian" <<CHANGELOG
keel ($version) unstable; urgency=medium

  * Package built from keel's source tree (packaging/build-deb.sh).

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGELOG
gzip -9nf "$doc/changelog.Debian"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/keel"

rm -rf "$root/DEBIAN"
install -d -m 0755 "$root/DEBIAN"
install -m 0755 "$here/postinst" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
size=$(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%s\n' | awk '{k += int(($1 + 1023) / 1024)} END {print k}')
sed -e "s|@VERSION@|$version|" -e "s|@MAINTAINER@|$maintainer|" -e "s|@INSTALLED_SIZE@|$size|" \
	"$here/control.in" >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$outdir"
rm -f "$outdir"/keel_*_amd64.deb # one package in OUTDIR: the one just built
deb="$outdir/keel_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
