// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// Scenarios of a fleet's faults and an attacker's inputs against boot
// counting (docs/boot-sequence.md "Failure classes", docs/security.md).

// goodAB is an A/B disk whose both slots were marked good, a first.
func goodAB(t testing.TB) abFixture {
	t.Helper()
	f := newAB(t, "")
	slotctlDisk(t, f.disk.Path, "mark-good", "b")
	slotctlDisk(t, f.disk.Path, "mark-good", "a")
	return f
}

// fallbackOf returns boot.json's fallback entry of slot x, failing t when
// there is none.
func fallbackOf(t testing.TB, br keelreport.Report, x string) keelreport.Fallback {
	t.Helper()
	for _, f := range br.Fallbacks {
		if f.Slot == x {
			return f
		}
	}
	t.Fatalf("boot.json fallbacks %+v: no entry for slot %s", br.Fallbacks, x)
	return keelreport.Fallback{}
}

// TestGoodSlotEnvironmentFault: a good slot whose device does not appear
// (a late or missing disk) is an environment fault: the other slot boots
// for this boot and the next normal boot is a's again; the same fault on
// both slots ends in the emergency policy with both reasons, the boot
// state exactly as it was.
func TestGoodSlotEnvironmentFault(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := goodAB(t)
	disk := f.disk.Path
	t.Run("missing-device-falls-back-for-one-boot", func(t *testing.T) {
		before := diskStatus(t, disk)
		br := f.boot(t, "root-a=PARTLABEL=no-such-disk rd.timeout=15", "b")
		fb := fallbackOf(t, br, "a")
		if fb.Class != "environment fault" || fb.Retired || !strings.Contains(fb.Reason, "no-such-disk") {
			t.Errorf("fallback of a %+v: want an environment fault naming the device, not retired", fb)
		}
		after := diskStatus(t, disk)
		if a, b := after.slot(t, "a"), before.slot(t, "a"); a.Priority != b.Priority || !a.Good || a.Reason != "" || a.Unconfirmed != b.Unconfirmed {
			t.Errorf("a after an environment fault: %+v, want as before %+v", a, b)
		}
		f.boot(t, "", "a")
	})
	t.Run("both-slots-emergency-state-unchanged", func(t *testing.T) {
		before := diskStatus(t, disk)
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{disk}, Cmdline: "root-a=PARTLABEL=gone-a root-b=PARTLABEL=gone-b rd.timeout=15"})
		m.Expect("keel: BOOT FAILED:")
		m.ExpectRegexp(`slot a \(environment fault\): .*gone-a`)
		m.ExpectRegexp(`slot b \(environment fault\): .*gone-b`)
		shellWorks(t, m)
		m.Kill()
		after := diskStatus(t, disk)
		if !slices.Equal(after.Slots, before.Slots) {
			t.Errorf("an environment fault on both slots changed the boot state:\nbefore %+v\nafter  %+v", before.Slots, after.Slots)
		}
		f.boot(t, "", "a")
	})
}

// TestGoodSlotDeepCorruption: corruption deep in a good slot's image (its
// inode table, not block 0) restarts the machine under
// restart_on_corruption before the boot is confirmed. Each such boot is
// counted as unconfirmed; after the baked number of them (mkinitrd
// --max-unconfirmed 2 here) the other good slot boots, and slotctl status
// says why.
func TestGoodSlotDeepCorruption(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := goodAB(t)
	f.initrd = initrd(t, "--trust", signingKey(t, "release")+".pub", "--max-unconfirmed", "2")
	root := f.disk.Part(t, "root-a")
	corrupt(t, f.disk.Path, root.Offset+inodeTableStart(t, f.disk.Path, root.Offset))
	for i := 1; i <= 2; i++ {
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}})
		m.Expect("keel: slot a:")
		m.ExpectReboot()
		if a := diskStatus(t, f.disk.Path).slot(t, "a"); a.Unconfirmed != i || !a.Good {
			t.Fatalf("after corrupt boot %d: a %+v, want good with %d unconfirmed boots", i, a, i)
		}
	}
	br := f.boot(t, "", "b")
	if br.Demoted != "a" || !strings.Contains(br.SlotReason, "a demoted") || br.MaxUnconfirmed != 2 {
		t.Errorf("boot after 2 unconfirmed boots of a: demoted %q, slot_reason %q, max_unconfirmed %d: want a demoted, 2 baked", br.Demoted, br.SlotReason, br.MaxUnconfirmed)
	}
	s := diskStatus(t, f.disk.Path)
	if a, b := s.slot(t, "a"), s.slot(t, "b"); !a.Good || a.Priority >= b.Priority || !strings.Contains(a.Reason, "not confirmed") {
		t.Errorf("after the demotion: a %+v, b %+v: want a good, below b, with the reason", a, b)
	}
	out := run(t, keelTools(t).slotctl, "status", "--disk", f.disk.Path)
	if !strings.Contains(out, "demoted: 2 boots in a row were not confirmed") {
		t.Errorf("slotctl status does not say why a was demoted:\n%s", out)
	}
}

// sealIndexed seals tree with a rollback index.
func sealIndexed(t testing.TB, tree, key, imageID, index string) sealed {
	t.Helper()
	sq := vm.MkSquashfs(t, tree)
	out := filepath.Join(t.TempDir(), "verity.img")
	m := rootHashRE.FindStringSubmatch(run(t, keelTools(t).slotctl, "seal", "--image", sq, "--out", out,
		"--image-id", imageID, "--key", key, "--rollback-index", index))
	if m == nil {
		t.Fatal("slotctl seal printed no root hash")
	}
	return sealed{squashfs: sq, verity: out, rootHash: m[1]}
}

// TestLockedBootCounting: a locked initramfs refuses an image whose
// rollback index is below the floor (the other slot boots), and refuses
// slot= for a slot that boot counting retired.
func TestLockedBootCounting(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	locked := initrd(t, "--locked", "--trust", key+".pub")
	t.Run("rollback-index-below-floor", func(t *testing.T) {
		t.Parallel()
		a := sealIndexed(t, payloadTree(t, "image-a"), key, "img-a", "5")
		b := sealIndexed(t, payloadTree(t, "image-b"), key, "img-b", "3")
		f := abFixture{disk: abDisk(t, &a, &b), initrd: locked}
		slotctlDisk(t, f.disk.Path, "mark-good", "a") // floor 5
		slotctlDisk(t, f.disk.Path, "set-next", "b")
		br := f.boot(t, "", "a")
		fb := fallbackOf(t, br, "b")
		if fb.Class != "image fault" || !fb.Retired || !strings.Contains(fb.Reason, "rollback index 3 is below this machine's floor 5") {
			t.Errorf("fallback of b %+v: want an image fault naming index and floor, retired", fb)
		}
		if s := diskStatus(t, f.disk.Path); s.slot(t, "b").Bootable {
			t.Errorf("b still bootable after its rollback was refused: %+v", s.slot(t, "b"))
		}
	})
	t.Run("slot-of-a-retired-slot", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		f.initrd = locked
		slotctlDisk(t, f.disk.Path, "mark-good", "a")
		slotctlDisk(t, f.disk.Path, "mark-bad", "b")
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}, Cmdline: "slot=b"})
		m.ExpectRegexp(`slot=b: refused: the initramfs is locked and slot b cannot boot`)
		r := m.ExpectReport()
		m.ExpectPowerOff()
		br := bootReport(t, r)
		if br.Slot != "a" {
			t.Errorf("locked slot=b of a retired slot booted %q, want a by boot counting", br.Slot)
		}
		if len(br.Refused) != 1 || br.Refused[0].Option != "slot=b" {
			t.Errorf("boot.json refused %+v: want slot=b", br.Refused)
		}
	})
}

// partitionSum hashes partition p of a disk image.
func partitionSum(t testing.TB, disk string, p vm.Partition) [32]byte {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, p.Offset, p.Size)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestBootStateNeverAVictim: bootstate= pointing at a file system is
// refused by name; the boot goes on without durable counting, and the file
// system's bytes are the same after two boots.
func TestBootStateNeverAVictim(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	dir := t.TempDir()
	vm.WriteFile(t, dir, "precious.txt", "the user's data")
	ext4 := vm.MkExt4(t, dir, 8, "spare")
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	b := seal(t, payloadTree(t, "image-b"), key, "img-b")
	f := abFixture{disk: abDisk(t, &a, &b, vm.Part{Name: "spare", SizeMiB: 8, Content: ext4}), initrd: initrd(t, "--trust", key+".pub")}
	spare := f.disk.Part(t, "spare")
	before := partitionSum(t, f.disk.Path, spare)
	for i := 0; i < 2; i++ {
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}, Cmdline: "bootstate=PARTLABEL=spare"})
		m.ExpectRegexp(`boot counting is not durable: bootstate device /dev/vda\d+: not a keel boot state: the device holds ext4`)
		r := m.ExpectReport()
		m.ExpectPowerOff()
		if br := bootReport(t, r); br.Slot != "a" {
			t.Errorf("boot %d: slot %q, want a by priority", i+1, br.Slot)
		}
	}
	if after := partitionSum(t, f.disk.Path, spare); after != before {
		t.Error("the file system named by bootstate= was written")
	}
}
