#!/usr/bin/env bash
# make demo: build a real Debian bookworm root, seal it into both slots of an
# A/B disk image with a btrfs data partition, build keel's initramfs and boot
# it in QEMU with boot counting choosing the slot. The booted system marks
# its slot good (keel-mark-good.service), prints keel's boot report, the
# mounts and `slotctl status`, then powers off.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
demo=$OUT/demo
mkdir -p "$demo"
export KEEL_CACHE_DIR=${KEEL_CACHE_DIR:-$PWD/$OUT/cache}
mkdir -p "$KEEL_CACHE_DIR"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Debian bookworm root (mmdebstrap; cached in $KEEL_CACHE_DIR)"
./scripts/debian-root.sh "$demo"
rm -rf "$demo/root" && mkdir -p "$demo/root"
tar -C "$demo/root" -xf "$demo/debian-root.tar"
install -m 0755 "$OUT/slotctl" "$demo/root/usr/bin/slotctl"
install -m 0644 systemd/keel-mark-good.service "$demo/root/etc/systemd/system/keel-mark-good.service"
ln -sf ../keel-mark-good.service "$demo/root/etc/systemd/system/multi-user.target.wants/keel-mark-good.service"
cat >"$demo/root/etc/systemd/system/keel-demo-report.service" <<'UNIT'
[Unit]
Description=keel demo: show the boot report and power off
After=multi-user.target keel-mark-good.service

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/console
ExecStart=/bin/sh -c 'echo; echo "== /run/keel/boot.json (written by keel in the initramfs)"; cat /run/keel/boot.json; echo "== mounts keel made"; grep -E " (/|/var|/home|/run/keel/[a-z]+) " /proc/mounts; echo "== slotctl status (after keel-mark-good.service)"; /usr/bin/slotctl status || true'
ExecStartPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../keel-demo-report.service "$demo/root/etc/systemd/system/multi-user.target.wants/keel-demo-report.service"

step "SquashFS image and sealed verity partitions"
mksquashfs "$demo/root" "$demo/root.squashfs" -noappend -comp zstd -quiet -all-root
[ -f "$demo/signing.key" ] || "$OUT/slotctl" keygen --out "$demo/signing.key"
"$OUT/slotctl" seal --image "$demo/root.squashfs" --out "$demo/verity.img" --key "$demo/signing.key" --image-id demo-1

step "A/B disk image (GPT: root-a verity-a root-b verity-b bootstate data)"
mib() { echo $(( ($(stat -c %s "$1") + 2*1048576 - 1) / 1048576 )); }
rs=$(mib "$demo/root.squashfs") vs=$(mib "$demo/verity.img")
disk=$demo/disk.img
rm -f "$disk"
truncate -s $(( (2*rs + 2*vs + 8 + 200) ))M "$disk"
sfdisk -q "$disk" <<EOT
label: gpt
size=${rs}MiB, name=root-a
size=${vs}MiB, name=verity-a
size=${rs}MiB, name=root-b
size=${vs}MiB, name=verity-b
size=1MiB, name=bootstate
size=200MiB, name=data
EOT
put() { # put IMAGE PARTNUMBER
  local start
  start=$(sfdisk --json "$disk" | awk -v n="$2" '/"start"/ {i++; if (i==n) {gsub(/[^0-9]/,"",$0); print; exit}}')
  dd if="$1" of="$disk" bs=512 seek="$start" conv=notrunc,sparse status=none
}
put "$demo/root.squashfs" 1; put "$demo/verity.img" 2
put "$demo/root.squashfs" 3; put "$demo/verity.img" 4
rm -f "$demo/data.btrfs" && truncate -s 200M "$demo/data.btrfs" && mkfs.btrfs -q "$demo/data.btrfs"
put "$demo/data.btrfs" 6
sfdisk -l "$disk" | sed -n '/^Device/,$p'

step "initramfs (mkinitrd: host-only for this VM, trusting the demo signing key)"
kernel=${KEEL_KERNEL:-$(ls -1 /boot/vmlinuz-* | sort -V | tail -1)}
kver=${kernel#/boot/vmlinuz-}
# The modules this machine needs, as an image build for known hardware would
# list them (without the two flags: the generic default set, 4.3 MiB).
"$OUT/mkinitrd" --out "$demo/initrd.img" --kver "$kver" --trust "$demo/signing.key.pub" \
  --no-default-modules --modules virtio_pci,virtio_blk,squashfs,overlay,dm_verity,btrfs

step "Booting in QEMU (TCG; KEEL_KVM=1 for KVM): boot counting picks the slot"
accel="-machine q35,accel=tcg -cpu max"
[ -n "${KEEL_KVM:-}" ] && accel="-machine q35,accel=kvm -cpu host"
# shellcheck disable=SC2086
timeout 600 qemu-system-x86_64 $accel -m 1024 -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$demo/initrd.img" \
  -drive "file=$disk,if=virtio,format=raw" \
  -append "console=ttyS0 panic=-1 ${KEEL_DEMO_CMDLINE:-}" | tee "$demo/console.log" |
  grep --line-buffered -vE '^\[ *[0-9.]+\] (systemd\[|[a-z_]+: |ACPI|PCI|pci|x86|e820|BIOS|Memory|smp|NET|clock|tsc|rcu|input|[A-Z]+ )|^\[.*(OK|Stopp|Unmount|Remov|Start|Reached|Finished|Deactivat)|Starting|Stopping' || true
echo
grep -q 'KEEL-SYSTEMD: multi-user reached\|== /run/keel/boot.json' "$demo/console.log" &&
  echo "demo: booted through keel into systemd (full console log: $demo/console.log)" ||
  { echo "demo: the boot did not reach systemd; see $demo/console.log" >&2; exit 1; }
