// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// The scenarios of docs/security.md: what a locked initramfs does with an
// attacker's command line and second disk, and what every boot says when
// nothing authenticated its root.

// attackerUpper is an ext4 data file system laid out as keel's data
// partition, whose upper layers for img-a (in slot a, or booted as a single
// image) replace the marker, /etc/shadow and /sbin/init over the verified
// image.
func attackerUpper(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, slot := range []string{"a", "single"} {
		upper := "@overlay/" + slot + "/img-a/upper/"
		vm.WriteFile(t, dir, upper+"etc/keel-test-marker", "attacker-upper")
		vm.WriteFile(t, dir, upper+"etc/shadow", "root::1:0:99999:7:::\n")
		vm.WriteFile(t, dir, upper+"sbin/init", "#!/bin/sh\necho pwned\n")
		if err := os.MkdirAll(filepath.Join(dir, "@overlay", slot, "img-a/work"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"@var", "@home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return vm.MkExt4(t, dir, 16, "")
}

// marker is the payload's /etc/keel-test-marker, "(none)" when missing.
func marker(r report.Report) string {
	if r.Marker == nil {
		return "(none)"
	}
	return *r.Marker
}

// partSum is the sha256 of partition name's bytes in a disk image.
func partSum(t testing.TB, disk vm.Disk, name string) [32]byte {
	t.Helper()
	return partitionSum(t, disk.Path, disk.Part(t, name))
}

// TestLockedRefusesOverrides: a locked initramfs, given a command line that
// points every device at a second disk (a USB stick with a data partition
// holding an attacker's upper layer, and an older image validly signed by
// the release key) plus init=, verity=off and a short rd.timeout=, refuses
// each option by name on the console (with quiet) and in boot.json, boots
// the system disk's slot a, never mounts the attacker's upper, and writes
// nothing to the stick (bootstate= pointed at its file system).
func TestLockedRefusesOverrides(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	old := seal(t, payloadTree(t, "attacker-image"), key, "img-a")
	system := abDisk(t, &a, nil)
	// Labels keel does not look for by default: only the command line
	// could point at these partitions.
	stick := vm.NewDisk(t, "", []vm.Part{
		{Name: "usb-data", SizeMiB: 17, Content: attackerUpper(t)},
		{Name: "usb-root", SizeMiB: sizeMiB(t, old.squashfs), Content: old.squashfs},
		{Name: "usb-verity", SizeMiB: 1, Content: old.verity},
	})
	before := partSum(t, stick, "usb-data")
	// --data-may-be-plain: the refusal of data= alone must keep the upper
	// out, not the encryption requirement.
	rd := initrd(t, "--locked", "--trust", key+".pub", "--data-may-be-plain")
	overrides := []string{
		"data=/dev/vdb1", "bootstate=/dev/vdb1", "root-a=/dev/vdb2", "verity-a=/dev/vdb3",
		"root=/dev/vdb2", "systemd.verity_root_hash=/dev/vdb3", "systemd.verity-root-data=PARTLABEL=usb-root",
		"init=/bin/sh", "verity=off", "rd.timeout=2",
	}
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{system.Path, stick.Path}, Cmdline: "quiet " + strings.Join(overrides, " ")})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)

	if marker(r) != "image-a" || br.Slot != "a" || br.ImageID != "img-a" || br.RootHash != a.rootHash {
		t.Errorf("marker %q, slot %q, image %q, root hash %s: want slot a's own image-a (%s)", marker(r), br.Slot, br.ImageID, br.RootHash, a.rootHash)
	}
	if mnt, ok := r.Mount("/"); !ok || mnt.FSType != "overlay" || strings.Contains(mnt.Options, "/run/keel/data") {
		t.Errorf("/ is %+v: want an overlay with a tmpfs upper, not one on the stick", mnt)
	}
	if br.Data != nil || br.Overlay != "tmpfs" || !br.Authenticated {
		t.Errorf("boot.json data %+v overlay %q authenticated %v: want no data partition, tmpfs, authenticated", br.Data, br.Overlay, br.Authenticated)
	}
	// The stick is the second drive, normally vdb; the kernel may name the
	// two virtio disks the other way round (probe order), so the devices
	// used are checked against the system disk keel chose, whose slot a
	// booted image-a (checked above).
	for role, dev := range br.Devices {
		if strings.HasPrefix(dev, "/dev/vd") && (br.SystemDisk == "" || !strings.HasPrefix(dev, br.SystemDisk)) {
			t.Errorf("boot.json device %s = %s, not on the system disk %q: the stick was used", role, dev, br.SystemDisk)
		}
	}
	wantRefused(t, br, overrides)
	out := m.Output()
	for _, want := range []string{
		`keel: WARNING: command line: data="/dev/vdb1": refused: initramfs is locked, and the baked default is PARTLABEL=data`,
		`keel: WARNING: command line: bootstate="/dev/vdb1": refused: initramfs is locked, and the baked default is PARTLABEL=bootstate`,
		`keel: WARNING: command line: root-a="/dev/vdb2": refused: initramfs is locked, and the baked default is PARTLABEL=root-a`,
		`keel: WARNING: command line: init="/bin/sh": refused: initramfs is locked`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(out, "pwned") {
		t.Error("the attacker's /sbin/init ran")
	}
	if partSum(t, stick, "usb-data") != before {
		t.Error("the stick's file system was written to (bootstate= at it)")
	}
}

// TestLockedRefusesSystemdShell: a locked initramfs whose command line asks
// systemd to run a command (systemd.run=, which systemd's run generator
// starts as root from the verified image's own shell) does not hand over
// to systemd: the boot fails naming the option and the machine reboots,
// and the command never runs.
func TestLockedRefusesSystemdShell(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	rd := initrd(t, "--locked", "--trust", key+".pub")
	for _, c := range []struct{ name, cmdline, refused string }{
		{"double-quoted", `"systemd.run=/bin/sh -c 'echo pwned'" systemd.run_success_action=none`, `"systemd.run=/bin/sh -c 'echo pwned'": refused`},
		// One word to the kernel, whose split knows only double quotes;
		// systemd's split reads systemd.run= (it used to get through).
		{"single-quoted-double-quote", `'"' systemd.run=/bin/sh`, "command line: systemd.run=/bin/sh: refused"},
		// One word to systemd; two to the kernel, whose isspace is
		// Latin-1's: it blacklists the system disk's driver (it used to
		// get through, and a stick could have been chosen instead).
		{"no-break-space", "quiet x\xa0module_blacklist=virtio_blk", "command line: module_blacklist=virtio_blk: refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			disk := abDisk(t, &a, nil)
			m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: c.cmdline})
			m.Expect("keel: BOOT FAILED:")
			m.Expect(c.refused + ": the initramfs is locked")
			m.ExpectReboot()
			if strings.Contains(m.Output(), "switching root") {
				t.Error("the locked initramfs handed the command line's systemd.run= to the booted system")
			}
			if strings.Contains(c.cmdline, "module_blacklist") && !strings.Contains(m.Output(), "Module virtio_blk is blacklisted") {
				t.Error("the kernel did not apply module_blacklist= behind 0xA0: the test no longer shows the attack")
			}
		})
	}
}

// TestLockedAmbiguousDataUUID: a locked initramfs baked with data=UUID=X
// (the builder names the data partition by its file system's UUID) and a
// stick whose file system carries the same UUID, with an attacker's upper:
// the data partition is refused as ambiguous, by name, the boot goes on
// volatile from the system disk's slot, and the stick's upper is never
// mounted (the first device announced used to win).
func TestLockedAmbiguousDataUUID(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const uuid = "5c3a9f1e-8d2b-4e6a-9c1f-0b7d2e4a6c88"
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	system := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 17, Content: mkfs(t, "mkfs.ext4", 16, "-q", "-F", "-U", uuid)})
	clone := attackerUpper(t)
	run(t, "tune2fs", "-U", uuid, clone)
	stick := vm.NewDisk(t, "", []vm.Part{{Name: "usb-data", SizeMiB: 17, Content: clone}})
	rd := initrd(t, "--locked", "--trust", key+".pub", "--data-may-be-plain", "--cmdline", "data=UUID="+uuid)
	br, out := volatileBoot(t, vm.Options{Initrd: rd, Disks: []string{system.Path, stick.Path}, Cmdline: "quiet"}, "2 devices match")
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "data device UUID="+uuid+": 2 devices match") || !strings.Contains(w, "the initramfs is locked and will not guess") {
		t.Errorf("boot.json warnings %q: want the ambiguous data partition named", br.Warnings)
	}
	if strings.Contains(out, "pwned") {
		t.Error("the attacker's /sbin/init ran")
	}
}

// TestLockedAmbiguousBootState: a locked initramfs whose builder names the
// boot-state partition by its PARTUUID (baked bootstate=), and a stick
// with a partition carrying the same PARTUUID: no slot boots, both
// devices are named, and the locked policy reboots. The boot used to count
// in memory from the defaults, rollback floor 0, and boot slot a: an older
// signed image below the floor, for whoever plugged in the stick.
func TestLockedAmbiguousBootState(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	system := abDisk(t, &a, nil)
	uuid := system.Part(t, "bootstate").UUID
	stick := vm.NewDisk(t, "", []vm.Part{{Name: "usb", SizeMiB: 1, UUID: uuid}})
	rd := initrd(t, "--locked", "--trust", key+".pub", "--cmdline", "bootstate=PARTUUID="+uuid)
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{system.Path, stick.Path}, Cmdline: "quiet"})
	m.ExpectRegexp(`BOOT FAILED: .*no slot is booted: bootstate device PARTUUID=` + regexp.QuoteMeta(strings.ToLower(uuid)) + `: 2 devices match \(/dev/vda5, /dev/vdb1\)`)
	m.ExpectReboot()
	if strings.Contains(m.Output(), report.Prefix) {
		t.Error("a slot's payload ran")
	}
}

// wantRefused checks that boot.json's refused list names each option, with
// a reason that says the initramfs is locked.
func wantRefused(t testing.TB, br keelreport.Report, options []string) {
	t.Helper()
	got := map[string]string{}
	for _, f := range br.Refused {
		got[f.Option] = f.Reason
	}
	for _, o := range options {
		if reason, ok := got[o]; !ok || !strings.HasPrefix(reason, "refused: initramfs is locked") {
			t.Errorf("boot.json refused %+v: want %s refused because the initramfs is locked", br.Refused, o)
		}
	}
}

// TestLockedPlainDataNotUsed: a locked initramfs requires an encrypted data
// partition by default; a plain one on the system disk, even one holding an
// upper layer for the booted image, is not mounted: the boot is volatile
// and says why.
func TestLockedPlainDataNotUsed(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 17, Content: attackerUpper(t)})
	before := partSum(t, disk, "data")
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--locked", "--trust", key+".pub"), Disks: []string{disk.Path}, Cmdline: "quiet"})
	m.Expect("DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
	m.Expect("found plain ext4, expected LUKS2")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if marker(r) != "image-a" {
		t.Errorf("marker %q: want image-a, not the plain partition's upper", marker(r))
	}
	if br.Data == nil || !br.Data.Volatile || br.Data.FSType != "" || br.Overlay != "tmpfs" {
		t.Errorf("boot.json data %+v overlay %q: want the partition not used (volatile), a tmpfs upper", br.Data, br.Overlay)
	}
	if partSum(t, disk, "data") != before {
		t.Error("the plain data partition was written to")
	}
}

// TestUnauthenticatedRootWarns: a root nothing authenticated (no trusted
// keys baked in, so the unsigned header was accepted; verity=off; a plain
// root=) is named on the console at warning level even with quiet, and in
// boot.json.
func TestUnauthenticatedRootWarns(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	slots := abDisk(t, &a, nil)
	plain := vm.NewDisk(t, "", []vm.Part{{Name: "plain", SizeMiB: 33, Content: vm.MkExt4(t, payloadTree(t, "image-a"), 32, "")}})
	rd := initrd(t)
	for _, tt := range []struct {
		name, cmdline, console, warning string
		disk                            vm.Disk
	}{
		{"unsigned", "slot=a quiet", "keel: WARNING: root NOT AUTHENTICATED: no trusted keys are baked into the initramfs",
			"root NOT AUTHENTICATED", slots},
		{"verity-off", "slot=a quiet verity=off", "keel: WARNING: verity=off: root NOT VERIFIED", "verity=off: root NOT VERIFIED", slots},
		{"plain-root", "root=PARTLABEL=plain quiet", "keel: WARNING: plain root /dev/vda1: root NOT VERIFIED", "root NOT VERIFIED", plain},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{tt.disk.Path}, Cmdline: tt.cmdline})
			m.Expect(tt.console)
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			found := false
			for _, w := range br.Warnings {
				found = found || strings.Contains(w, tt.warning)
			}
			if br.Authenticated || !found || marker(r) != "image-a" {
				t.Errorf("boot.json authenticated %v, warnings %q, marker %q: want not authenticated, a warning %q, image-a booted",
					br.Authenticated, br.Warnings, marker(r), tt.warning)
			}
		})
	}
}

// TestMkinitrdLockedWithoutTrust runs the built mkinitrd: --locked with
// nothing to trust exits 1 with a message naming --trust, and writes no
// image.
func TestMkinitrdLockedWithoutTrust(t *testing.T) {
	tl := keelTools(t)
	out := filepath.Join(t.TempDir(), "locked.img")
	cmd := exec.Command(tl.mkinitrd, "--out", out, "--kver", "none", "--no-default-modules", "--init", tl.init, "--locked")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("mkinitrd --locked without --trust: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "mkinitrd: --locked without --trust: a locked initramfs needs at least one --trust KEY.pub") {
		t.Errorf("stderr %q: want the reason naming --trust", stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused build wrote an image")
	}
}
