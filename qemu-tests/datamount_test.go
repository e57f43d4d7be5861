// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestDataMountNeverReturns: the data partition is on a disk that stops
// answering once its file system is mounted (an NBD server that never
// answers a read past the first MiB of the partition: the partition
// table, the probe of its superblock and the background module prefetch
// read before that, ext4's mount reads its journal after it). The mount
// never returns, as on a dead backend or with a file system whose mount
// hangs or panics the kernel, and the power is cut (what a watchdog or
// the kernel's panic timeout does). Each such boot is counted in the boot
// state before its mount began; after bootstate.DataMountLimit of them the
// next boot leaves the partition alone, volatile and loudly, and comes up;
// its count sets the boot state back, so the boot after it, the disk
// answering again, mounts the data partition. Without the count every
// boot hung at the same mount.
func TestDataMountNeverReturns(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	system := abDisk(t, &a, nil)
	data := vm.NewDisk(t, "", []vm.Part{{Name: "data", SizeMiB: 40, Content: mkfs(t, "mkfs.ext4", 38, "-q", "-F")}})
	p := data.Part(t, "data")
	srv := vm.ServeNBD(t, data.Path)
	srv.Stall(func(off, n int64) bool { return off+n > p.Offset+1<<20 && off < p.Offset+p.Size })
	o := vm.Options{Initrd: initrd(t), Disks: []string{system.Path}, QEMUArgs: srv.Drive(),
		Cmdline: "data=PARTUUID=" + p.UUID + " " + actions(t, map[string]string{"/var/keel-hang": "written"}, "/var/keel-hang")}

	for n := 1; n <= bootstate.DataMountLimit; n++ {
		m := vm.Start(t, o)
		off := srv.ExpectStall(m)
		m.Kill()
		if out := m.Output(); strings.Contains(out, "slot a:") {
			t.Fatalf("boot %d: a slot was chosen before the stalled read at byte %d: the mount was not what hung\n%s", n, off, out)
		}
		if got := diskStatus(t, system.Path).UnfinishedDataMounts; got != n {
			t.Fatalf("after %d boots stalled in the mount: unfinished data mounts %d, want %d", n, got, n)
		}
	}

	m := vm.Start(t, o)
	// The kernel names the two disks in the order their probes end.
	m.ExpectRegexp(`keel: WARNING: DATA PARTITION /dev/vd[ab]1 NOT USED, BOOTING VOLATILE`)
	m.Expect("the last 2 boots began mounting it and never finished with it")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "a" || br.Data == nil || !br.Data.Volatile || br.Overlay != "tmpfs" {
		t.Errorf("slot %q data %+v overlay %s: want slot a, volatile on tmpfs", br.Slot, br.Data, br.Overlay)
	}
	if len(srv.Stalled) != 0 {
		t.Errorf("the volatile boot read the data partition's file system (byte %d)", <-srv.Stalled)
	}
	st := diskStatus(t, system.Path)
	if st.UnfinishedDataMounts != 0 || st.slot(t, "a").Tries != bootstate.DefaultTries-1 {
		t.Errorf("after the volatile boot: %+v: want no unfinished mount, and slot a's try counted once", st)
	}

	srv.Stall(nil) // the disk answers again (repaired, replaced)
	m = vm.Start(t, o)
	r = m.ExpectReport()
	m.ExpectPowerOff()
	br = bootReport(t, r)
	other := map[string]string{"/dev/vda": "/dev/vdb1", "/dev/vdb": "/dev/vda1"}[br.SystemDisk]
	if br.Data == nil || br.Data.Volatile || other == "" || br.Data.Device != other || br.Overlay != "persistent" {
		t.Errorf("data %+v overlay %s (system disk %s): want the other disk's partition 1 mounted again, persistent", br.Data, br.Overlay, br.SystemDisk)
	}
	wantCat(t, r, "/var/keel-hang", "written")
	if got := diskStatus(t, system.Path).UnfinishedDataMounts; got != 0 {
		t.Errorf("after a boot that mounted the data partition: unfinished data mounts %d, want 0", got)
	}
}

// TestDataWorkNeverReturns: as TestDataMountNeverReturns, but the disk stops
// answering after the mount, once a slot was chosen and its try counted:
// the first read of @var's directory, which only the /var seed makes (the
// data partition holds a @var made by hand, not yet seeded). The seed
// never returns, as on a file system that hangs in a write-heavy step (the
// seed, the /etc merge, the pruning of old uppers), and the power is cut.
// The mount stays counted until the slot's attempt returned, so these
// boots are counted like those that hang in the mount: after
// bootstate.DataMountLimit of them the next boot comes up volatile, and the
// one after it, the disk answering again, seeds @var and keeps what was
// there. Before, the choice of a slot ended the count and every boot hung
// in the seed.
func TestDataWorkNeverReturns(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	system := abDisk(t, &a, nil)
	slotctlDisk(t, system.Path, "mark-good", "a") // a worked: its boots are not trials
	dir := t.TempDir()
	vm.WriteFile(t, dir, "@var/kept", "mine")
	fs := vm.MkExt4(t, dir, 38, "")
	varDir, bsize := ext4Blocks(t, fs, "/@var")
	data := vm.NewDisk(t, "", []vm.Part{{Name: "data", SizeMiB: 40, Content: fs}})
	p := data.Part(t, "data")
	srv := vm.ServeNBD(t, data.Path)
	srv.Stall(func(off, n int64) bool {
		for _, b := range varDir {
			if off < p.Offset+b+bsize && off+n > p.Offset+b {
				return true
			}
		}
		return false
	})
	o := vm.Options{Initrd: initrd(t), Disks: []string{system.Path}, QEMUArgs: srv.Drive(),
		Cmdline: "data=PARTUUID=" + p.UUID + " " + actions(t, map[string]string{"/var/keel-hang": "written"}, "/var/keel-hang", "/var/kept")}

	for n := 1; n <= bootstate.DataMountLimit; n++ {
		m := vm.Start(t, o)
		srv.ExpectStall(m)
		m.Expect("slot a:") // printed before the attempt: the hang came after the choice
		m.Kill()
		st := diskStatus(t, system.Path)
		if st.UnfinishedDataMounts != n {
			t.Fatalf("after %d boots stalled in the seed of /var: unfinished data mounts %d, want %d", n, st.UnfinishedDataMounts, n)
		}
		if a := st.slot(t, "a"); !a.Good || a.Priority == 0 {
			t.Fatalf("after %d boots stalled in the seed of /var: slot a %+v: want it good and bootable", n, a)
		}
	}

	br, _ := volatileBoot(t, o, "keel: WARNING: DATA PARTITION")
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "the last 2 boots began mounting it and never finished with it") {
		t.Errorf("boot.json warnings %q: want why the data partition was left alone", w)
	}
	if len(srv.Stalled) != 0 {
		t.Errorf("the volatile boot read the data partition's file system (byte %d)", <-srv.Stalled)
	}
	if got := diskStatus(t, system.Path).UnfinishedDataMounts; got != 0 {
		t.Errorf("after the volatile boot: unfinished data mounts %d, want 0", got)
	}

	srv.Stall(nil) // the disk answers again (repaired, replaced)
	m := vm.Start(t, o)
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br = bootReport(t, r)
	if br.Data == nil || br.Data.Volatile || !br.Data.Seeded || br.Overlay != "persistent" {
		t.Errorf("data %+v overlay %s: want the data partition mounted again, @var seeded, persistent", br.Data, br.Overlay)
	}
	wantCat(t, r, "/var/keel-hang", "written")
	wantCat(t, r, "/var/kept", "mine")
	if got := diskStatus(t, system.Path).UnfinishedDataMounts; got != 0 {
		t.Errorf("after a boot that seeded the data partition: unfinished data mounts %d, want 0", got)
	}
}
