#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing keel needs and
# is missing. Says what it installs; does nothing when all is present.
set -euo pipefail

# package:probe (a file the package provides)
need=(
  qemu-system-x86:/usr/bin/qemu-system-x86_64
  linux-image-amd64:/boot/vmlinuz-*
  squashfs-tools:/usr/bin/mksquashfs
  cryptsetup-bin:/usr/sbin/veritysetup
  btrfs-progs:/sbin/mkfs.btrfs
  e2fsprogs:/usr/sbin/mkfs.ext4
  xfsprogs:/sbin/mkfs.xfs
  fdisk:/usr/sbin/sfdisk
  mmdebstrap:/usr/bin/mmdebstrap
  rauc:/usr/bin/rauc
  busybox-static:/bin/busybox
  cpio:/usr/bin/cpio
  zstd:/usr/bin/zstd
  xz-utils:/usr/bin/xz
  ca-certificates:/etc/ssl/certs/ca-certificates.crt
  lintian:/usr/bin/lintian
  ovmf:/usr/share/OVMF/OVMF_CODE*.fd
  systemd-boot-efi:/usr/lib/systemd/boot/efi/linuxx64.efi.stub
  dosfstools:/sbin/mkfs.vfat
  mtools:/usr/bin/mcopy
  binutils:/usr/bin/objcopy
)
missing=()
for entry in "${need[@]}"; do
  pkg=${entry%%:*} probe=${entry#*:}
  # shellcheck disable=SC2086
  if ! compgen -G "$probe" >/dev/null; then missing+=("$pkg"); fi
done
# busybox (dynamic) and busybox-static conflict; keel needs the static one.
if [ -e /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q dynamic; then missing+=(busybox-static); fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go is missing; install Go >= 1.26 (https://go.dev/dl) and retry" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
