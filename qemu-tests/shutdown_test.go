// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// shutdownScript runs once multi-user.target is reached: it reports what
// /run/initramfs holds (keel's shutdown program and undo record, resident
// in RAM until power-off), writes to the data partition, optionally starts
// a process that holds a file there, and shuts down with the verb of
// keel.test.shutdown= through systemctl, as an operator would.
const shutdownScript = `#!/bin/sh
echo "KEEL-SYSTEMD: initramfs $(du -sk /run/initramfs | cut -f1) KiB: $(ls /run/initramfs | tr '\n' ' ')" >/dev/console
date >/var/keel-test-written
for w in $(cat /proc/cmdline); do
	case $w in
	keel.test.shutdown=*) verb=${w#*=} ;;
	keel.test.hold=1) systemctl start keel-test-hold.service ;;
	keel.test.rebootarg=*) arg=${w#*=} ;;
	esac
done
echo "KEEL-SYSTEMD: systemctl $verb" >/dev/console
systemctl --no-block "$verb" $arg
`

const shutdownUnit = `[Unit]
Description=keel test: shut down through systemctl
After=multi-user.target keel-test-marker.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/keel-test-shutdown

[Install]
WantedBy=multi-user.target
`

// holdUnit keeps a file on the data partition open through the shutdown:
// systemd leaves it alone (KillMode=none) and systemd-shutdown does not
// kill a root process whose argv[0] starts with @ (a storage daemon, by
// systemd's convention), so keel's shutdown program meets it.
const holdUnit = `[Unit]
Description=keel test: hold a file on the data partition through shutdown

[Service]
KillMode=none
ExecStart=/bin/bash -c 'exec 3</var/keel-test-written; echo "KEEL-SYSTEMD: holding /var/keel-test-written" >/dev/console; exec -a @keel-hold /bin/sleep infinity'
`

// shutdownRoot is the Debian root with the shutdown units.
func shutdownRoot(t testing.TB) string {
	t.Helper()
	root := vm.CopyTree(t, vm.DebianRoot(t))
	vm.WriteFile(t, root, "usr/local/bin/keel-test-shutdown", shutdownScript)
	run(t, "chmod", "0755", filepath.Join(root, "usr/local/bin/keel-test-shutdown"))
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-shutdown.service", shutdownUnit)
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-hold.service", holdUnit)
	enableUnit(t, root, "keel-test-shutdown.service", "multi-user.target.wants")
	return root
}

// haltMessage is the kernel's last word on reboot(LINUX_REBOOT_CMD_HALT).
const haltMessage = "reboot: System halted"

var initramfsLine = regexp.MustCompile(`KEEL-SYSTEMD: initramfs (\d+) KiB: (.*)$`)

// shutdownBoot boots the disk, lets the root shut itself down with verb
// and waits for QEMU to end as the verb says. It returns the console.
func shutdownBoot(t *testing.T, rd, disk, verb, extra string) string {
	t.Helper()
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk}, Cmdline: "slot=a keel.test.shutdown=" + verb + " " + extra, Timeout: 4 * time.Minute})
	m.Expect("KEEL-SYSTEMD: multi-user reached")
	ram := m.ExpectRegexp(initramfsLine.String())
	t.Logf("/run/initramfs after switch_root: %s KiB (%s)", ram[1], strings.TrimSpace(ram[2]))
	if files := strings.Fields(ram[2]); !slices.Contains(files, "shutdown") || !slices.Contains(files, "keel-undo") {
		t.Errorf("/run/initramfs holds %q: want shutdown and keel-undo", files)
	}
	m.Expect("KEEL-SYSTEMD: systemctl " + verb)
	switch verb {
	case "reboot":
		m.ExpectReboot()
	case "halt":
		// A halted machine stays on: QEMU runs until it is stopped.
		m.Expect(haltMessage)
		m.Kill()
	default:
		m.ExpectPowerOff()
	}
	return m.Output()
}

// cleanShutdown checks the console of a boot whose shutdown went through
// keel's shutdown program without a problem.
//
// systemd 252 tries each device-mapper device once or twice before it hands
// over and logs "Could not detach DM" at info level for the ones still
// busy: the verity device under the root overlay always is (and the data
// partition's dm-crypt device, which the overlay's upper holds). Those
// lines are allowed only before systemd hands over ("Returning to
// initrd"), and keel must then remove every one of its devices.
func cleanShutdown(t *testing.T, out string, dms ...string) {
	t.Helper()
	handover := strings.Index(out, "Returning to initrd")
	if handover < 0 {
		t.Fatal("systemd-shutdown did not hand over to /run/initramfs/shutdown (no \"Returning to initrd\")")
	}
	for _, bad := range []string{"FAILED", "keel: shutdown: could not undo", "Unable to finalize", "Failed to execute shutdown binary"} {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, bad) {
				t.Errorf("console has %q: %s", bad, strings.TrimSpace(l))
			}
		}
	}
	if n := strings.Count(out[:handover], "Could not detach DM"); n > 0 {
		t.Logf("systemd-shutdown logged %d busy DM device(s) before the hand-over (info level in systemd 252)", n)
	}
	if strings.Contains(out[handover:], "Could not detach DM") {
		t.Error("\"Could not detach DM\" after the hand-over")
	}
	if !strings.Contains(out[handover:], "keel: shutdown: everything keel set up is undone") {
		t.Error("console has no \"keel: shutdown: everything keel set up is undone\"")
	}
	// systemd-shutdown unmounted the data partition's own mount point: it
	// is written back through the root's overlay, whose upper it holds.
	if !regexp.MustCompile(`keel: shutdown: written back: (\S+ )*/oldroot\s`).MatchString(out[handover:]) {
		t.Error("console does not say that the root (the overlay over the data partition) was written back before the unmounts")
	}
	if m := regexp.MustCompile(`(?m)keel: shutdown: unmounted \d+ below /oldroot: .* /oldroot\s*$`).FindString(out); m == "" {
		t.Error("console has no line saying the old root itself was unmounted last")
	}
	if !strings.Contains(out, "keel: shutdown: removed device-mapper devices "+strings.Join(dms, " ")) {
		t.Errorf("console does not say %v were removed", dms)
	}
}

// quietShutdown checks the console of a shutdown booted with quiet, as
// Debian's boot loaders do by default: systemd-shutdown's info lines are
// below the console level then, so the console must show no
// "Could not detach DM" line at all (one at error level would still show),
// no failed unit and no keel error; the machine ends as the verb says.
func quietShutdown(t *testing.T, out, end string) {
	t.Helper()
	for _, bad := range []string{"Could not detach DM", "FAILED", "keel: shutdown: could not undo", "could not be undone", "Unable to finalize", "Failed to execute shutdown binary"} {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, bad) {
				t.Errorf("console (quiet) has %q: %s", bad, strings.TrimSpace(l))
			}
		}
	}
	if !strings.Contains(out, end) {
		t.Errorf("console (quiet) does not end with %q", end)
	}
}

// TestShutdownSystemdBtrfs: the Debian systemd root with a btrfs data
// partition reboots (systemctl reboot), powers off (systemctl poweroff)
// and halts (systemctl halt, booted with quiet) through keel's shutdown
// program: no failed unit, no DM warning after the hand-over (none at all
// with quiet), the overlay, binds, data partition and verity device all
// undone; the later boots replay no btrfs log and the file system checks
// clean on the host afterwards.
func TestShutdownSystemdBtrfs(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	img := seal(t, shutdownRoot(t), "", "debian-shutdown")
	disk := abDisk(t, &img, nil, vm.Part{Name: "data", SizeMiB: 130, Content: mkfs(t, "mkfs.btrfs", 128, "-q")})
	rd := initrd(t)

	// systemctl reboot ARG: the argument goes to the kernel (RESTART2),
	// which says it; it used to be dropped.
	out := shutdownBoot(t, rd, disk.Path, "reboot", "keel.test.rebootarg=keel-test")
	cleanShutdown(t, out, "keel-root-a")
	for _, want := range []string{`keel: shutdown: reboot with argument "keel-test"`, "reboot: Restarting system with command 'keel-test'"} {
		if !strings.Contains(out, want) {
			t.Errorf("console has no %q", want)
		}
	}
	out = shutdownBoot(t, rd, disk.Path, "poweroff", "")
	cleanShutdown(t, out, "keel-root-a")
	if strings.Contains(out, "tree-log replay") {
		t.Error("the second boot replayed the btrfs log: the first shutdown left it unclean")
	}
	out = shutdownBoot(t, rd, disk.Path, "halt", "quiet")
	quietShutdown(t, out, haltMessage)
	data := extractPart(t, disk, "data")
	run(t, "btrfs", "check", "--readonly", data)
	super := run(t, "btrfs", "inspect-internal", "dump-super", data)
	if !regexp.MustCompile(`(?m)^log_root\s+0$`).MatchString(super) {
		t.Errorf("btrfs super block after power-off has a log to replay:\n%s", super)
	}
}

// TestShutdownSystemdLUKS: with ext4 inside LUKS2 as the data partition,
// a power-off closes the dm-crypt mapping (keel-data) and leaves ext4
// clean (the next mount recovers nothing); then a process that holds a
// file on /var through the shutdown costs the clean unmount but not the
// power-off, and the console names the mount, the holder and the device
// left open.
func TestShutdownSystemdLUKS(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key, keyFile := luksKeyFile(t)
	img := seal(t, shutdownRoot(t), "", "debian-shutdown")
	disk := abDisk(t, &img, nil, vm.Part{Name: "data", SizeMiB: 49, Content: luksData(t, key, pbkdf2...)})
	rd := initrd(t, "--luks-keyfile", keyFile)

	out := shutdownBoot(t, rd, disk.Path, "poweroff", "")
	cleanShutdown(t, out, "keel-data", "keel-root-a")

	out = shutdownBoot(t, rd, disk.Path, "poweroff", "keel.test.hold=1")
	if strings.Contains(out, "recovery complete") {
		t.Error("ext4 recovered its journal at the second boot: the first power-off left it unclean")
	}
	for _, re := range []string{
		`KEEL-SYSTEMD: holding /var/keel-test-written`,
		`keel: shutdown: could not undo /oldroot/var: device or resource busy \(held by \d+ @keel-hold\); (remounted )?read-only, detached lazily`,
		`keel: shutdown: could not undo dm keel-data: device or resource busy; left open`,
		`keel: shutdown: \d+ thing\(s\) could not be undone \(above\); going on`,
		`keel: shutdown: poweroff`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("console has no line matching %q", re)
		}
	}
}

// TestShutdownSystemdLUKSBtrfs: with btrfs inside LUKS2 as the data
// partition and a tmpfs root overlay (so the root's write-back does not
// reach the data partition), a /var held through the shutdown is still
// written back by its own syncfs before the unmounts. The shutdown finds
// the data partition's mounts by the device the undo record names
// (/dev/mapper/keel-data); the mount table names a btrfs by the path of
// its device's last scan, and systemd's udev rule scans the device again
// as /dev/dm-N: this proves the table still names the device keel
// mounted on Debian's kernel and udev (a review's worry, not seen).
func TestShutdownSystemdLUKSBtrfs(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key, keyFile := luksKeyFile(t)
	img := seal(t, shutdownRoot(t), "", "debian-shutdown")
	disk := abDisk(t, &img, nil, vm.Part{Name: "data", SizeMiB: luksSizeMiB("btrfs") + 1, Content: luksOver(t, "btrfs", key, pbkdf2...)})
	rd := initrd(t, "--luks-keyfile", keyFile)

	out := shutdownBoot(t, rd, disk.Path, "poweroff", "overlay=tmpfs keel.test.hold=1")
	for _, re := range []string{
		`KEEL-SYSTEMD: holding /var/keel-test-written`,
		`keel: shutdown: written back: /oldroot/var /oldroot\s`,
		`keel: shutdown: poweroff`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("console has no line matching %q", re)
		}
	}
}

// extractPart copies a partition of the disk image into a file of its own.
func extractPart(t testing.TB, disk vm.Disk, name string) string {
	t.Helper()
	p := disk.Part(t, name)
	src, err := os.Open(disk.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), name+".img")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, p.Offset, p.Size)); err != nil {
		t.Fatal(err)
	}
	return out
}
