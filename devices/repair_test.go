// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stubBlkpg records the partitions added, failing those in fail.
func stubBlkpg(t *testing.T, fail map[int32]error) *[]unix.BlkpgPartition {
	t.Helper()
	var added []unix.BlkpgPartition
	old := blkpgAdd
	blkpgAdd = func(_ *os.File, p *unix.BlkpgPartition) error {
		if err := fail[p.Pno]; err != nil {
			return err
		}
		added = append(added, *p)
		return nil
	}
	t.Cleanup(func() { blkpgAdd = old })
	return &added
}

// sysDisk makes SYS/class/block/DISK with ext_range and the partitions
// the kernel lists.
func sysDisk(t *testing.T, sys, disk, extRange string, parts ...string) {
	t.Helper()
	dir := filepath.Join(sys, "class", "block", disk)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if extRange != "" {
		if err := os.WriteFile(filepath.Join(dir, "ext_range"), []byte(extRange+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range parts {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p, "partition"), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// damagedDisk is a 64 MiB sfdisk disk (root-a 1, verity-a 2, data 5)
// with the given bytes of its primary GPT's header flipped (none: sound).
func damagedDisk(t *testing.T, flip ...int64) string {
	t.Helper()
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=8M, name=root-a\n size=8M, name=verity-a\n5: size=4M, name=data\n")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range flip {
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x10
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// TestRepairAddsPartitions: a disk whose primary GPT is damaged is read
// from its backup, said so, and, when the kernel lists none of its
// partitions, gets them added with BLKPG at the byte ranges of the table;
// a disk the kernel read, a disk that takes no partitions, or a job that
// may not add them gets nothing added.
func TestRepairAddsPartitions(t *testing.T) {
	damaged := damagedDisk(t, 512+40)
	sound := damagedDisk(t)
	noPMBR := damagedDisk(t, 446+4) // the 0xee type byte
	for _, tc := range []struct {
		name       string
		img        string
		sysDir     bool
		extRange   string
		kernel     []string // partitions sysfs lists
		fail       map[int32]error
		blockSize  int64 // what BLKSSZGET says; 0: unknown (a file)
		wantAdded  []int32
		wantNotes  []string
		wantAbsent string
	}{
		{name: "damaged primary, kernel found none", img: damaged, sysDir: true, extRange: "256", wantAdded: []int32{1, 2, 5},
			wantNotes: []string{"the primary GPT is damaged (GPT header at byte 512: checksum mismatch", "backup GPT at LBA 131071: rewrite the primary from it",
				"the kernel found no partition on it (it reads only the primary GPT); added the 3 of its GPT: vda1, vda2, vda5"}},
		{name: "damaged primary, kernel read it (booted with gpt)", img: damaged, sysDir: true, kernel: []string{"vda1", "vda2", "vda5"},
			wantNotes: []string{"the primary GPT is damaged"}, wantAbsent: "added"},
		{name: "damaged primary, kernel found others (an MBR's)", img: damaged, sysDir: true, kernel: []string{"vda7"},
			wantNotes: []string{"the primary GPT is damaged"}, wantAbsent: "added"},
		{name: "damaged primary, not allowed to add", img: damaged, wantNotes: []string{"the primary GPT is damaged"}, wantAbsent: "added"},
		{name: "no protective MBR", img: noPMBR, sysDir: true, wantAdded: []int32{1, 2, 5},
			wantNotes: []string{"(sector 0 holds no protective MBR, without which it does not read the GPT: write one (gdisk /dev/vda, then w)); added the 3 of its GPT"}, wantAbsent: "damaged"},
		{name: "sound disk the kernel read", img: sound, sysDir: true, extRange: "256", kernel: []string{"vda1", "vda2", "vda5"}},
		{name: "sound disk the kernel refused for its own reasons", img: sound, sysDir: true,
			wantNotes: []string{"/dev/vda: the kernel found no partition on it, though its GPT reads: not added"}, wantAbsent: "added the"},
		{name: "a GPT of another sector size", img: damaged, sysDir: true, blockSize: 4096,
			wantNotes: []string{"its GPT, found at 512-byte sectors, is not the disk's (4096 bytes): not added"}, wantAbsent: "added the"},
		{name: "disk without partitions (a CD drive)", img: damaged, sysDir: true, extRange: "1",
			wantNotes: []string{"the primary GPT is damaged"}, wantAbsent: "added"},
		{name: "an add refused", img: damaged, sysDir: true, fail: map[int32]error{2: fmt.Errorf("BLKPG_ADD_PARTITION: %w", syscall.EBUSY)}, wantAdded: []int32{1, 5},
			wantNotes: []string{"1 of its GPT's partitions, which the kernel did not find, could not be added: vda2 (PARTLABEL=verity-a): BLKPG_ADD_PARTITION: device or resource busy", "added the 2 of its GPT: vda1, vda5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := filepath.Join(t.TempDir(), "sys")
			sysDisk(t, sys, "vda", tc.extRange, tc.kernel...)
			added := stubBlkpg(t, tc.fail)
			if tc.blockSize != 0 {
				old := logicalBlockSize
				logicalBlockSize = func(*os.File) (int64, error) { return tc.blockSize, nil }
				t.Cleanup(func() { logicalBlockSize = old })
			}
			f, err := os.Open(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tab, err := readTable(f)
			if err != nil {
				t.Fatal(err)
			}
			j := &probeJob{name: "vda", path: "/dev/vda"}
			if tc.sysDir {
				j.sysDir = sys
			}
			notes := j.repair(f, tab)
			all := strings.Join(notes, "\n")
			for _, w := range tc.wantNotes {
				if !strings.Contains(all, w) {
					t.Errorf("notes %q: want %q", notes, w)
				}
			}
			if len(tc.wantNotes) == 0 && len(notes) > 0 || tc.wantAbsent != "" && strings.Contains(all, tc.wantAbsent) {
				t.Errorf("notes %q: want none with %q", notes, tc.wantAbsent)
			}
			var pnos []int32
			for _, p := range *added {
				pnos = append(pnos, p.Pno)
				q := tab.Parts[slices.IndexFunc(tab.Parts, func(q Partition) bool { return int32(q.Index) == p.Pno })]
				if p.Start != int64(q.FirstLBA)*512 || p.Length != int64(q.LastLBA-q.FirstLBA+1)*512 {
					t.Errorf("partition %d added at %d+%d, want LBAs %d..%d", p.Pno, p.Start, p.Length, q.FirstLBA, q.LastLBA)
				}
			}
			if !slices.Equal(pnos, tc.wantAdded) {
				t.Errorf("added %v, want %v", pnos, tc.wantAdded)
			}
		})
	}
}

func TestAddPartitionOutsideDisk(t *testing.T) {
	added := stubBlkpg(t, nil)
	for _, p := range []Partition{{Index: 1, FirstLBA: 0, LastLBA: 9}, {Index: 2, FirstLBA: 10, LastLBA: 9}, {Index: 3, FirstLBA: 100, LastLBA: 2048}, {Index: 4, FirstLBA: 1 << 50, LastLBA: 1 << 51}} {
		size := int64(2048 * 512)
		if p.Index == 4 {
			size = 0 // unknown
		}
		if err := addPartition(nil, 512, size, p); !errors.Is(err, errOutside) {
			t.Errorf("partition %+v of %d bytes: %v, want it refused as outside the disk", p, size, err)
		}
	}
	if err := addPartition(nil, 512, 2048*512, Partition{Index: 5, FirstLBA: 2047, LastLBA: 2047}); err != nil || len(*added) != 1 {
		t.Errorf("the last sector: %v, added %+v", err, *added)
	}
}

// TestRegistryAddsMissingPartitions: through the registry the init runs
// (AddPartitions), waiting for a partition of a disk whose primary GPT is
// damaged reads the backup, adds what the kernel lacks, finds the
// partition once the kernel announces it, and Notes says it once.
func TestRegistryAddsMissingPartitions(t *testing.T) {
	fs := newFakeSystemWith(t, Options{AddPartitions: true})
	sysDisk(t, fs.sys, "vda", "256")
	fs.file(t, "vda", damagedDisk(t, 512+40))
	fs.file(t, "vda5", "")
	announce := make(chan Uevent, 8)
	old := blkpgAdd
	blkpgAdd = func(_ *os.File, p *unix.BlkpgPartition) error {
		announce <- ev(t, "add", fmt.Sprintf("vda%d", p.Pno), "vda", int(p.Pno), "")
		return nil
	}
	defer func() { blkpgAdd = old }()
	fs.send(ev(t, "add", "vda", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := waitAsync(ctx, fs.reg, spec(t, "PARTLABEL=data"))
	// The kernel announces what BLKPG added, as it would.
	for range 3 {
		select {
		case e := <-announce:
			fs.send(e)
		case <-ctx.Done():
			t.Fatal("fewer than 3 partitions added")
		}
	}
	if got := <-res; got.err != nil || got.path != filepath.Join(fs.dev, "vda5") {
		t.Fatalf("WaitFor = %+v, want dev/vda5", got)
	}
	notes := fs.reg.Notes()
	if len(notes) != 2 || !strings.Contains(notes[0], "the primary GPT is damaged") || !strings.Contains(notes[1], "added the 3 of its GPT") {
		t.Errorf("notes %q", notes)
	}
	if again := fs.reg.Notes(); len(again) != 0 {
		t.Errorf("notes again %q, want none", again)
	}
}

// TestRepairHostileTable: a table of thousands of entries the kernel
// refuses (a stick's crafted GPT) costs one console line, not thousands.
func TestRepairHostileTable(t *testing.T) {
	sys := filepath.Join(t.TempDir(), "sys")
	sysDisk(t, sys, "sdb", "")
	added := stubBlkpg(t, nil)
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab := GPT{Sector: 512}
	for i := 1; i <= 8192; i++ {
		tab.Parts = append(tab.Parts, Partition{Index: i, Name: "x", FirstLBA: 1 << 40, LastLBA: 1 << 41})
	}
	j := &probeJob{name: "sdb", path: "/dev/sdb", sysDir: sys}
	notes := j.repair(f, tab)
	if len(notes) != 1 || len(notes[0]) > 1000 || !strings.Contains(notes[0], "8192 of its GPT's partitions") || len(*added) != 0 {
		t.Errorf("notes %q (%d added): want one short line naming 8192 partitions", notes, len(*added))
	}
}

func TestShown(t *testing.T) {
	for in, want := range map[string]string{
		"root-a": "root-a", "données-😀": "données-😀", "": "",
		"a b": `"a b"`, "x\nkeel: all is well": `"x\nkeel: all is well"`, "\x1b[2J": `"\x1b[2J"`, `say"`: `"say\""`, "\xff": `"\xff"`,
	} {
		if got := Shown(in); got != want {
			t.Errorf("Shown(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestNotesOnceEach: a note found again (the disk read again after a
// change) is said once, and a disk that keeps changing cannot grow them
// without bound.
func TestNotesOnceEach(t *testing.T) {
	r := NewRegistry(Options{})
	r.note([]string{"a", "b"})
	r.note([]string{"a"})
	if got := r.Notes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("notes %q, want a, b", got)
	}
	r.note([]string{"b", "c"})
	if got := r.Notes(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("notes %q, want c alone", got)
	}
	for i := range 100 {
		r.note([]string{fmt.Sprint(i)})
	}
	if got := r.Notes(); len(got) != maxNotes-3 {
		t.Errorf("%d notes kept, want at most %d in all", len(got), maxNotes)
	}
}

// TestProbePanicFailsTheDevice: a panic while a disk is read (here in the
// BLKPG call; any reader of disk bytes could have the bug) fails that
// disk's read by name and leaves the registry usable: it used to unwind
// through the waiter's deferred unlock, a fatal runtime error that killed
// PID 1 before its emergency policy.
func TestProbePanicFailsTheDevice(t *testing.T) {
	fs := newFakeSystemWith(t, Options{AddPartitions: true})
	r := fs.reg
	sysDisk(t, fs.sys, "vda", "256")
	fs.file(t, "vda", damagedDisk(t, 512+40))
	old := blkpgAdd
	blkpgAdd = func(*os.File, *unix.BlkpgPartition) error { panic("boom") }
	defer func() { blkpgAdd = old }()
	ctx, cancel := context.WithCancel(context.Background())
	res := waitAsync(ctx, r, spec(t, "PARTLABEL=data"))
	fs.send(ev(t, "add", "vda", "", 0, ""))
	var notes []string
	for giveUp := time.After(time.Minute); len(notes) == 0; {
		select {
		case <-giveUp:
			t.Fatal("no note after the disk's read panicked")
		case <-time.After(5 * time.Millisecond):
			notes = r.Notes()
		}
	}
	cancel()
	if got := <-res; got.err == nil {
		t.Fatalf("WaitFor found %s on a disk whose read panicked", got.path)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "/dev/vda: reading it panicked: boom") {
		t.Errorf("notes %q: want the panic named", notes)
	}
	if devs := r.Devices(); len(devs) != 1 || devs[0].Name != "vda" {
		t.Errorf("devices after the panic: %+v", devs)
	}
}
