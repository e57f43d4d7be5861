#!/usr/bin/env bash
# Installs the initramfs generators `make bench` compares keel with, from
# Debian's packages, when they are missing; says what it installs.
#
#   initramfs-tools-core  mkinitramfs
#   dracut-core           dracut
#   tiny-initramfs-core   mktirfs
#
# These are the generator-only packages. None has a kernel hook or a
# maintainer script that writes /boot, and none replaces the system's
# initramfs provider: that is what the packages initramfs-tools, dracut and
# tiny-initramfs do (they conflict with one another). dracut-core ships
# dracut-shutdown.service, which at shutdown only unpacks the current
# initramfs into /run/initramfs. --no-install-recommends keeps out mdadm,
# lvm2, cryptsetup and friends, whose hooks would rebuild the host's
# initramfs. The bench runs each generator with a private configuration and
# output directory; as a guard, /boot is checksummed before and after.
set -euo pipefail

need=(
  initramfs-tools-core:mkinitramfs
  dracut-core:dracut
  tiny-initramfs-core:mktirfs
)
missing=()
for entry in "${need[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-peers: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

boot_sums() { find /boot -maxdepth 1 -type f -print0 | sort -z | xargs -0r sha256sum; }
before=$(boot_sums)
echo "install-peers: installing Debian packages: ${missing[*]} (generators only: no kernel hooks, /boot untouched)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ "$before" != "$(boot_sums)" ]; then
  echo "install-peers: /boot changed while installing ${missing[*]}: check the host's initramfs before rebooting" >&2
  exit 1
fi
echo "install-peers: done"
