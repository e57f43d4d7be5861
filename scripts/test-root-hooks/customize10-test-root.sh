#!/bin/sh
# mmdebstrap customize hook of keel's test roots (scripts/debian-root.sh,
# scripts/deb-image.sh: --hook-dir=scripts/test-root-hooks); $1 is the root.
#
# The marker unit prints "KEEL-SYSTEMD: multi-user reached" once
# multi-user.target is reached, so tests can wait for it. Getties, first-boot
# prompts and apt timers only slow the boot down or wait for input; a fixed
# machine-id keeps ConditionFirstBoot false. apt's lists and caches are not
# needed in a test root.
set -e
root=$1
scripts=$(dirname "$(dirname "$(readlink -f "$0")")")
cp "$scripts/keel-test-marker.service" "$root/etc/systemd/system/"
chroot "$root" systemctl enable keel-test-marker.service
chroot "$root" systemctl mask getty@tty1.service serial-getty@ttyS0.service \
	systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer
echo keel-test >"$root/etc/hostname"
echo 4b65656c746573740000000000000001 >"$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
