// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
)

// slotState is one slot of `slotctl status --json`.
type slotState struct {
	Slot        string `json:"slot"`
	Priority    int    `json:"priority"`
	Tries       int    `json:"tries"`
	Good        bool   `json:"good"`
	Unconfirmed int    `json:"unconfirmed"`
	Bootable    bool   `json:"bootable"`
	Reason      string `json:"reason"`
	HeaderError string `json:"header_error"`
}

// bootState is the part of `slotctl status --json` the scenarios check.
type bootState struct {
	Sequence             uint64      `json:"sequence"`
	Initialised          bool        `json:"initialised"`
	UnfinishedDataMounts int         `json:"unfinished_data_mounts"`
	LastGood             string      `json:"last_good"` // SLOT/IMAGE-ID
	Warnings             []string    `json:"warnings"`
	Slots                []slotState `json:"slots"`
}

// slot returns slot x's state, failing t when status did not list it.
func (s bootState) slot(t testing.TB, x string) slotState {
	t.Helper()
	for _, st := range s.Slots {
		if st.Slot == x {
			return st
		}
	}
	t.Fatalf("slotctl status lists slots %+v: no slot %s", s.Slots, x)
	return slotState{}
}

// diskStatus reads the boot state of a disk image with slotctl, as an update
// agent or an image build would.
func diskStatus(t testing.TB, disk string) bootState {
	t.Helper()
	out, _ := runSplit(t, keelTools(t).slotctl, "status", "--json", "--disk", disk)
	var s bootState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("slotctl status --json: %v\n%s", err, out)
	}
	if len(s.Slots) != 2 {
		t.Fatalf("slotctl status --json lists %d slots, want a and b:\n%s", len(s.Slots), out)
	}
	return s
}

// slotctlDisk runs a slotctl boot-state command on a disk image.
func slotctlDisk(t testing.TB, disk string, args ...string) string {
	t.Helper()
	return run(t, keelTools(t).slotctl, append(args, "--disk", disk)...)
}

// abFixture is an A/B disk with image-a and image-b sealed by the release
// key, and an initramfs that trusts it.
type abFixture struct {
	disk   vm.Disk
	initrd string
}

// newAB seals payload roots into both slots; bKey signs slot b's header
// (the release key when empty).
func newAB(t testing.TB, bKey string) abFixture {
	t.Helper()
	key := signingKey(t, "release")
	if bKey == "" {
		bKey = key
	}
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	b := seal(t, payloadTree(t, "image-b"), bKey, "img-b")
	return abFixture{disk: abDisk(t, &a, &b), initrd: initrd(t, "--trust", key+".pub")}
}

// boot boots the disk to the payload and returns boot.json; the payload's
// marker must name the image of wantSlot.
func (f abFixture) boot(t testing.TB, cmdline, wantSlot string) keelreport.Report {
	t.Helper()
	m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}, Cmdline: cmdline})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != wantSlot || r.Marker == nil || *r.Marker != "image-"+wantSlot {
		t.Fatalf("booted slot %q, marker %v (boot.json %s): want slot %s running image-%s", br.Slot, r.Marker, r.BootJSON, wantSlot, wantSlot)
	}
	return br
}

// wantTriesLeft checks boot.json's tries_left.
func wantTriesLeft(t testing.TB, br keelreport.Report, want int) {
	t.Helper()
	if br.TriesLeft == nil || *br.TriesLeft != want {
		t.Errorf("boot.json tries_left %v (slot_reason %q): want %d", deref(br.TriesLeft), br.SlotReason, want)
	}
}

func deref(p *int) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

// TestBootCountTrial walks one disk through an update's life: a fresh disk
// boots a; set-next b boots b on trial; mark-good keeps b; a trial never
// marked good rolls back to a once its tries run out; slot=b leaves the
// counters alone. The subtests share the disk and run in order.
func TestBootCountTrial(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := newAB(t, "")
	disk := f.disk.Path
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"fresh-disk-boots-a", func(t *testing.T) {
			if s := diskStatus(t, disk); s.Initialised {
				t.Fatalf("blank bootstate: status says initialised (sequence %d)", s.Sequence)
			}
			def := bootstate.DefaultState().Slot(slots.SlotA)
			br := f.boot(t, "", "a")
			wantTriesLeft(t, br, int(def.Tries)-1)
			if !strings.Contains(br.SlotReason, "highest priority") {
				t.Errorf("slot_reason %q: want why a was chosen (highest priority)", br.SlotReason)
			}
			s := diskStatus(t, disk)
			if a := s.slot(t, "a"); !s.Initialised || a.Tries != int(def.Tries)-1 || a.Good || a.Priority != int(def.Priority) {
				t.Errorf("after the first boot: %+v: want initialised, a priority %d, tries %d, not good", s, def.Priority, def.Tries-1)
			}
			// The record this boot left, which slotctl checks the
			// partition against (an erased partition is not a new one).
			if br.BootStateSeq == 0 || br.BootStateSeq != uint64(s.Sequence) {
				t.Errorf("boot.json bootstate_seq %d: want the sequence the boot left on the partition, %d", br.BootStateSeq, s.Sequence)
			}
		}},
		{"set-next-b-boots-b", func(t *testing.T) {
			slotctlDisk(t, disk, "mark-good", "a") // the running system confirmed a
			slotctlDisk(t, disk, "set-next", "b")
			br := f.boot(t, "", "b")
			wantTriesLeft(t, br, bootstate.DefaultTries-1)
			s := diskStatus(t, disk)
			if b, a := s.slot(t, "b"), s.slot(t, "a"); b.Tries != bootstate.DefaultTries-1 || b.Good || b.Priority <= a.Priority || !a.Good || !a.Bootable {
				t.Errorf("after booting b on trial: %+v: want b first with %d tries, a good as the fallback", s.Slots, bootstate.DefaultTries-1)
			}
		}},
		{"mark-good-keeps-b", func(t *testing.T) {
			slotctlDisk(t, disk, "mark-good", "b")
			before := diskStatus(t, disk).slot(t, "b")
			br := f.boot(t, "", "b")
			wantTriesLeft(t, br, before.Tries)
			if !strings.Contains(br.SlotReason, "good") {
				t.Errorf("slot_reason %q: want it to say b is good", br.SlotReason)
			}
			want := before
			want.Unconfirmed++
			if after := diskStatus(t, disk).slot(t, "b"); after != want || !after.Good {
				t.Errorf("b after a boot as a good slot: %+v, want %+v (good, tries not used, one unconfirmed boot counted)", after, want)
			}
		}},
		{"trial-never-good-rolls-back", func(t *testing.T) {
			slotctlDisk(t, disk, "set-next", "b", "--tries", "1")
			wantTriesLeft(t, f.boot(t, "", "b"), 0)
			br := f.boot(t, "", "a")
			if !strings.Contains(br.SlotReason, bootstate.ReasonTriesExhausted) {
				t.Errorf("rollback boot: slot_reason %q: want it to say b's tries are exhausted", br.SlotReason)
			}
			s := diskStatus(t, disk)
			if b := s.slot(t, "b"); b.Priority != 0 || b.Bootable || b.Good || b.Reason != bootstate.ReasonTriesExhausted {
				t.Errorf("b after rollback: %+v: want priority 0, not bootable, reason %q", b, bootstate.ReasonTriesExhausted)
			}
			if a := s.slot(t, "a"); !a.Good || !a.Bootable {
				t.Errorf("a after rollback: %+v: want good and bootable", a)
			}
		}},
		{"forced-slot-leaves-counters", func(t *testing.T) {
			before := diskStatus(t, disk)
			br := f.boot(t, "slot=b", "b")
			if br.TriesLeft != nil || !strings.Contains(br.SlotReason, "slot=b") {
				t.Errorf("slot=b: tries_left %s, slot_reason %q: want no tries_left, forced by slot=b", deref(br.TriesLeft), br.SlotReason)
			}
			after := diskStatus(t, disk)
			if after.Sequence != before.Sequence || !slices.Equal(after.Slots, before.Slots) {
				t.Errorf("slot=b changed the boot state:\nbefore %+v\nafter  %+v", before, after)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return // the later steps build on this one
		}
	}
}

// readErrorFallback boots f with slot b set next and every read of the
// sectors failing with EIO (QEMU's blkdebug), and checks that b failed as an
// environment fault whose reason holds each of why, a booted, and b kept its state
// and its try.
func readErrorFallback(t *testing.T, f abFixture, sectors []int64, why ...string) {
	t.Helper()
	slotctlDisk(t, f.disk.Path, "set-next", "b")
	before := diskStatus(t, f.disk.Path).slot(t, "b")
	m := vm.Start(t, vm.Options{Initrd: f.initrd, QEMUArgs: failingReads(t, f.disk.Path, sectors, 0)})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "a" || len(br.Fallbacks) != 1 || br.Fallbacks[0].Slot != "b" || br.Fallbacks[0].Class != "environment fault" {
		t.Errorf("slot %q fallbacks %+v: want b failing as an environment fault, then a", br.Slot, br.Fallbacks)
	}
	for _, w := range why {
		if len(br.Fallbacks) > 0 && !strings.Contains(br.Fallbacks[0].Reason, w) {
			t.Errorf("b's fallback reason %q: want %q in it", br.Fallbacks[0].Reason, w)
		}
	}
	if b := diskStatus(t, f.disk.Path).slot(t, "b"); b.Priority != before.Priority || b.Reason != "" || b.Tries != before.Tries {
		t.Errorf("b after a disk read error: %+v, want it as before the boot (%+v): not retired, its try given back", b, before)
	}
}

// TestBootStateDeadCopy: the bootstate partition's second record copy
// sits on a sector that fails every read (QEMU's blkdebug), and takes
// writes (reads) or fails them too (all); a dying SD card or eMMC does
// either. Each boot of slot b on trial still uses up one try: the init
// writes its count where it reads back. With writes taken, the count used
// to go into the dead copy and every boot read the other copy's older
// state: the trial's tries were never used up, a trial that never came up
// was retried for ever. With writes failing, no slot booted: the trial's
// count failed, and so did the good slot's, which read back the failed
// write from the page cache as a newer record ("another writer?").
func TestBootStateDeadCopy(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	for _, iotype := range []string{"read", "all"} {
		t.Run(iotype, func(t *testing.T) {
			t.Parallel()
			f := newAB(t, "")
			slotctlDisk(t, f.disk.Path, "set-next", "b")
			tries := int(diskStatus(t, f.disk.Path).slot(t, "b").Tries)
			dead := (f.disk.Part(t, "bootstate").Offset + 64<<10) / 512 // copy 1 (bootstate/layout.go)
			rule := "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"" + fmt.Sprint(dead) + "\"\n"
			if iotype == "read" {
				rule += "iotype = \"read\"\n"
			}
			cfg := filepath.Join(t.TempDir(), "blkdebug.conf")
			if err := os.WriteFile(cfg, []byte(rule), 0o644); err != nil {
				t.Fatal(err)
			}
			for boot := 1; boot <= 2; boot++ {
				m := vm.Start(t, vm.Options{Initrd: f.initrd, QEMUArgs: []string{"-drive", "file=blkdebug:" + cfg + ":" + f.disk.Path + ",if=virtio,format=raw"}})
				r := m.ExpectReport()
				m.ExpectPowerOff()
				br := bootReport(t, r)
				if br.Slot != "b" || br.TriesLeft == nil || *br.TriesLeft != tries-boot {
					left := "none"
					if br.TriesLeft != nil {
						left = fmt.Sprint(*br.TriesLeft)
					}
					t.Fatalf("boot %d: slot %q tries left %s, fallbacks %+v: want b on trial with %d tries left", boot, br.Slot, left, br.Fallbacks, tries-boot)
				}
			}
		})
	}
}

// oneOffReadKeepsTrial boots f with slot b set next and the first times
// reads of sector failing with EIO, and checks that b booted on its trial
// (its try counted, not retired) with warnings that hold each of said.
func oneOffReadKeepsTrial(t *testing.T, f abFixture, sector int64, times int, said ...string) {
	t.Helper()
	slotctlDisk(t, f.disk.Path, "set-next", "b")
	before := diskStatus(t, f.disk.Path).slot(t, "b")
	m := vm.Start(t, vm.Options{Initrd: f.initrd, QEMUArgs: failingReads(t, f.disk.Path, []int64{sector}, times)})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "b" || marker(r) != "image-b" || len(br.Fallbacks) != 0 {
		t.Errorf("slot %q marker %q fallbacks %+v: want b booted, no fallback", br.Slot, marker(r), br.Fallbacks)
	}
	for _, w := range said {
		if !strings.Contains(strings.Join(br.Warnings, "\n"), w) {
			t.Errorf("warnings %q: want %q in them", br.Warnings, w)
		}
	}
	want := before
	want.Tries--
	if b := diskStatus(t, f.disk.Path).slot(t, "b"); b != want {
		t.Errorf("b after a one-off read error: %+v, want %+v (its try counted, not retired)", b, want)
	}
}

// failingReads gives the QEMU arguments that attach disk with every read
// of the sectors failing with EIO (QEMU's blkdebug), or only the first
// times reads of each when times is not 0 (one rule per failure, each
// dropped once it fired).
func failingReads(t *testing.T, disk string, sectors []int64, times int) []string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "blkdebug.conf")
	var rules []byte
	for _, s := range sectors {
		for range max(times, 1) {
			rules = fmt.Appendf(rules, "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"%d\"\n", s)
			if times > 0 {
				rules = append(rules, "once = \"on\"\n"...)
			}
		}
	}
	if err := os.WriteFile(cfg, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-drive", "file=blkdebug:" + cfg + ":" + disk + ",if=virtio,format=raw"}
}

// TestBootCountFallback: a slot that fails in the initramfs is marked bad
// and the other slot boots in the same boot; corruption that only the mount
// meets restarts the machine (restart_on_corruption) after the try was
// counted, so the next boot rolls back; with both bad the console names
// both reasons and the emergency shell opens.
func TestBootCountFallback(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	t.Run("untrusted-header", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, signingKey(t, "stranger"))
		sameBootFallback(t, f, "not in the trusted set")
	})
	t.Run("corrupt-squashfs", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		// Inside the first data block, past the superblock: dm-verity's
		// check of that block fails on keel's first read.
		corrupt(t, f.disk.Path, f.disk.Part(t, "root-b").Offset+2048)
		sameBootFallback(t, f, "dm-verity keel-root-b: first read failed")
	})
	t.Run("disk-read-error-is-not-the-image", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		// QEMU's blkdebug fails every read of a sector inside slot b's
		// first data block with EIO: dm-verity says EIO as it does for a
		// mismatch, but the blocks cannot be read directly either, so the
		// disk is at fault, and b keeps its state.
		readErrorFallback(t, f, []int64{f.disk.Part(t, "root-b").Offset/512 + 4}, "read directly, the slot's partitions fail too")
	})
	t.Run("one-off-read-error-keeps-the-trial", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		// The same sector fails twice only: the readahead of dm-verity's
		// first read, and the read of its page the kernel tries again
		// alone, so that the first read fails with EIO; the blocks read
		// directly match the root hash, and the device opened again
		// reads. b boots on its trial, its try counted as for any boot;
		// it was retired as a root hash mismatch. (One failure alone is
		// never seen: the kernel's read of the page passes.)
		sector := f.disk.Part(t, "root-b").Offset/512 + 4
		oneOffReadKeepsTrial(t, f, sector, 2, "but the same blocks, read directly, match the root hash", "opening it again")
	})
	t.Run("mount-read-error-is-not-the-image", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		// The same at the inode table: dm-verity's first read passes, the
		// mount's read of the root inode fails with EIO, and so does the
		// partition read directly: the disk's (it retired b before).
		root := f.disk.Part(t, "root-b")
		readErrorFallback(t, f, []int64{(root.Offset + inodeTableStart(t, f.disk.Path, root.Offset)) / 512}, "read directly, the slot's partitions fail too")
	})
	t.Run("init-lookup-read-error-is-not-the-image", func(t *testing.T) {
		t.Parallel()
		// Slot b's /sbin holds 4,000 empty files around init, so that
		// init's inode lies in the middle of the inode table, pages away
		// from the root inode's block at its end (the only block of the
		// table the mount reads). Every sector of those middle pages fails:
		// the mount passes, the lookup of /sbin/init fails with EIO (it was
		// "the image has no init", an image fault, before).
		key := signingKey(t, "release")
		tree := payloadTree(t, "image-b")
		for i := range 2000 {
			for _, c := range "az" {
				vm.WriteFile(t, tree, fmt.Sprintf("sbin/%c%04d", c, i), "")
			}
		}
		a, b := seal(t, payloadTree(t, "image-a"), key, "img-a"), seal(t, tree, key, "img-b")
		f := abFixture{disk: abDisk(t, &a, &b), initrd: initrd(t, "--trust", key+".pub")}
		root := f.disk.Part(t, "root-b")
		inodes := inodeTableStart(t, f.disk.Path, root.Offset)
		rootBlock := inodes + squashfsField(t, f.disk.Path, root.Offset, 32)>>16
		first, last := (inodes/4096+1)*4096, (rootBlock/4096-1)*4096
		if last-first < 2*4096 {
			t.Fatalf("inode table %d, root inode's block %d: too few pages between them", inodes, rootBlock)
		}
		var sectors []int64
		for off := first; off < last; off += 512 {
			sectors = append(sectors, (root.Offset+off)/512)
		}
		readErrorFallback(t, f, sectors, "init /sbin/init not found in the new root", "read directly, the slot's partitions fail too")
	})
	t.Run("init-lookup-one-off-read-error-keeps-the-trial", func(t *testing.T) {
		t.Parallel()
		// The lookup of /sbin/init meets one read error that does not
		// come back: the sector holding init's inode fails once. SquashFS
		// keeps the failed block's error for that mount, so keel mounts
		// the image again (the partitions read fine) and b boots on its
		// trial; it was "the image has no init" before, b retired.
		key := signingKey(t, "release")
		tree := payloadTree(t, "image-b")
		for i := range 2000 { // init's inode pages away from the root inode's block
			for _, c := range "az" {
				vm.WriteFile(t, tree, fmt.Sprintf("sbin/%c%04d", c, i), "")
			}
		}
		stamp := time.Unix(0x4b45454c, 0) // "KEEL": init's inode is found by its mtime
		if err := os.Chtimes(filepath.Join(tree, "sbin/init"), stamp, stamp); err != nil {
			t.Fatal(err)
		}
		sq := filepath.Join(t.TempDir(), "b.squashfs")
		run(t, "mksquashfs", tree, sq, "-noappend", "-comp", "lz4", "-noI", "-quiet", "-no-progress") // inodes stored as they are
		initAt, rootBlock := inodeByMtime(t, sq, uint32(stamp.Unix()))
		if initAt/4096 >= rootBlock/4096 {
			t.Fatalf("init's inode at %d shares a page with the root inode's block at %d, which the mount reads", initAt, rootBlock)
		}
		a, b := seal(t, payloadTree(t, "image-a"), key, "img-a"), sealSquashfs(t, sq, key, "img-b")
		f := abFixture{disk: abDisk(t, &a, &b), initrd: initrd(t, "--trust", key+".pub")}
		sector := (f.disk.Part(t, "root-b").Offset + initAt) / 512
		oneOffReadKeepsTrial(t, f, sector, 1, "looking up the init in the image", "mounting the image again")
	})
	t.Run("signed-broken-squashfs-is-the-image", func(t *testing.T) {
		t.Parallel()
		// b's SquashFS is damaged in its inode table before it is sealed:
		// its hashes match, dm-verity passes, the mount fails with EIO
		// (SquashFS cannot decompress the root inode's block) while the
		// partitions read fine: the image's fault, b is retired — a
		// signed but broken update must not stay on trial for ever.
		key := signingKey(t, "release")
		tree := payloadTree(t, "image-b")
		for i := range 300 { // inodes alike enough for the block to compress
			vm.WriteFile(t, tree, fmt.Sprintf("etc/many/f%03d", i), "")
		}
		sq := vm.MkSquashfs(t, tree)
		st, err := os.Stat(sq)
		if err != nil {
			t.Fatal(err)
		}
		// The root inode's metadata block (the table's last, which the
		// mount reads): its 2-byte header gives the stored length, bit 15
		// set when stored uncompressed.
		block := inodeTableStart(t, sq, 0) + squashfsField(t, sq, 0, 32)>>16
		head := make([]byte, 2)
		if f, err := os.Open(sq); err != nil {
			t.Fatal(err)
		} else {
			_, err = f.ReadAt(head, block)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		n := int64(binary.LittleEndian.Uint16(head))
		if n&0x8000 != 0 || n < 64 {
			t.Fatalf("the root inode's block is stored uncompressed or tiny (header %#04x): no decompression to fail", n)
		}
		corrupt(t, sq, block+2+n/2)
		a, b := seal(t, payloadTree(t, "image-a"), key, "img-a"), sealSquashfs(t, sq, key, "img-b")
		if fi, err := os.Stat(sq); err != nil || fi.Size() != st.Size() {
			t.Fatalf("the damaged SquashFS changed size: %v", err)
		}
		f := abFixture{disk: abDisk(t, &a, &b), initrd: initrd(t, "--trust", key+".pub")}
		slotctlDisk(t, f.disk.Path, "set-next", "b")
		br := f.boot(t, "", "a")
		if len(br.Fallbacks) != 1 || br.Fallbacks[0].Slot != "b" || br.Fallbacks[0].Class != "image fault" || !br.Fallbacks[0].Retired ||
			!strings.Contains(br.Fallbacks[0].Reason, "input/output error") {
			t.Errorf("fallbacks %+v: want b's mount failing with EIO as an image fault, b retired", br.Fallbacks)
		}
	})
	t.Run("corrupt-tree-restarts-then-rolls-back", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, "")
		// The inode table: the first read passes, the mount's read of the
		// root inode hits the corruption under restart_on_corruption.
		root := f.disk.Part(t, "root-b")
		corrupt(t, f.disk.Path, root.Offset+inodeTableStart(t, f.disk.Path, root.Offset))
		slotctlDisk(t, f.disk.Path, "set-next", "b", "--tries", "1")
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}})
		m.Expect("keel: slot b:")
		m.ExpectReboot()
		if b := diskStatus(t, f.disk.Path).slot(t, "b"); b.Tries != 0 || b.Good {
			t.Fatalf("b after the corruption restarted the machine: %+v: want its one try used", b)
		}
		br := f.boot(t, "", "a")
		if !strings.Contains(br.SlotReason, bootstate.ReasonTriesExhausted) {
			t.Errorf("boot after the restart: slot_reason %q: want b's tries exhausted", br.SlotReason)
		}
	})
	t.Run("both-bad-emergency", func(t *testing.T) {
		t.Parallel()
		f := newAB(t, signingKey(t, "stranger"))
		corrupt(t, f.disk.Path, f.disk.Part(t, "root-a").Offset+2048)
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}})
		m.Expect("keel: BOOT FAILED:")
		m.ExpectRegexp(`slot a \(image fault\): .*dm-verity keel-root-a: first read failed`)
		m.ExpectRegexp(`slot b \(image fault\): .*not in the trusted set`)
		shellWorks(t, m)
		m.Kill()
		s := diskStatus(t, f.disk.Path)
		for x, why := range map[string]string{"a": "first read failed", "b": "not in the trusted set"} {
			if st := s.slot(t, x); st.Bootable || !strings.Contains(st.Reason, why) {
				t.Errorf("slot %s after the failed boot: %+v: want not bootable, reason %q", x, st, why)
			}
		}
	})
}

// inodeTableStart reads where the SquashFS at off in the disk image keeps
// its inode table (superblock field inode_table_start, little-endian).
func inodeTableStart(t testing.TB, disk string, off int64) int64 {
	t.Helper()
	return squashfsField(t, disk, off, 64)
}

// inodeByMtime finds, in the SquashFS file sq built with uncompressed
// inodes (mksquashfs -noI), the one inode whose modification time is
// mtime: it returns the offset of that time's bytes in sq (inside the
// inode) and the offset of the root inode's metadata block.
func inodeByMtime(t testing.TB, sq string, mtime uint32) (at, rootBlock int64) {
	t.Helper()
	raw, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	start, end := inodeTableStart(t, sq, 0), squashfsField(t, sq, 0, 72) // the directory table follows
	rootBlock = start + squashfsField(t, sq, 0, 32)>>16
	want := binary.LittleEndian.AppendUint32(nil, mtime)
	at = -1
	for pos := start; pos+2 <= end; {
		head := int64(binary.LittleEndian.Uint16(raw[pos:]))
		n := head & 0x7fff
		if head&0x8000 == 0 || pos+2+n > end {
			t.Fatalf("%s: the inode table's block at %d is compressed or too long (header %#04x): build it with -noI", sq, pos, head)
		}
		// An inode's mtime is at byte 8 of its header (type, mode, uid,
		// gid: 2 bytes each); inodes start at even offsets.
		for i := int64(8); i+4 <= n; i += 2 {
			if string(raw[pos+2+i:pos+2+i+4]) == string(want) {
				if at >= 0 {
					t.Fatalf("%s: two inodes with mtime %#x", sq, mtime)
				}
				at = pos + 2 + i
			}
		}
		pos += 2 + n
	}
	if at < 0 {
		t.Fatalf("%s: no inode with mtime %#x", sq, mtime)
	}
	return at, rootBlock
}

// squashfsField reads the little-endian 64-bit field at byte field of the
// superblock of the SquashFS at off in the disk image.
func squashfsField(t testing.TB, disk string, off, field int64) int64 {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off+field); err != nil {
		t.Fatalf("squashfs superblock in %s: %v", disk, err)
	}
	return int64(binary.LittleEndian.Uint64(b))
}

// sameBootFallback puts b on trial, boots, and checks that b failed with
// why, was marked bad, and a booted in the same boot.
func sameBootFallback(t *testing.T, f abFixture, why string) {
	t.Helper()
	slotctlDisk(t, f.disk.Path, "set-next", "b")
	br := f.boot(t, "", "a")
	if len(br.Fallbacks) != 1 || br.Fallbacks[0].Slot != "b" || !strings.Contains(br.Fallbacks[0].Reason, why) {
		t.Errorf("boot.json fallbacks %+v: want b failing with %q", br.Fallbacks, why)
	}
	if !strings.Contains(br.SlotReason, "fallback") {
		t.Errorf("slot_reason %q: want it to say a is the fallback", br.SlotReason)
	}
	s := diskStatus(t, f.disk.Path)
	if b := s.slot(t, "b"); b.Priority != 0 || b.Bootable || !strings.Contains(b.Reason, why) {
		t.Errorf("b after failing: %+v: want priority 0, not bootable, reason %q", b, why)
	}
}

// powerCut is a moment of the early boot at which the power is cut: after the
// console line has appeared, and after a delay.
type powerCut struct {
	after string
	delay time.Duration
	// decrement is how many tries the boot must have used by then: 0 or 1,
	// -1 when either is right (the cut races the write).
	decrement int
}

// TestBootCountPowerCut kills QEMU at several points of the early boot, the
// boot state write among them: afterwards the state is always valid, a try
// used is used for good once the init said so, and no slot gains tries.
func TestBootCountPowerCut(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := newAB(t, "")
	// A trial of a with enough tries that the cuts never exhaust it.
	slotctlDisk(t, f.disk.Path, "set-next", "a", "--tries", "20")
	cuts := []powerCut{
		// The kill reaches QEMU some time after the host reads the line:
		// on a loaded host the guest may have written the decrement by
		// then (a helper's audit), so either is right; what holds is a
		// valid state, no try gained and at most one used.
		{"Run /init as init process", 0, -1},
		{"keel: bootstate device", 0, -1},
		{"keel: slot a:", 0, 1}, // printed once the decrement is durable
		{"keel: switching root", 0, 1},
		// The decrement is written within some 30 ms of this line.
		{"keel: bootstate device", 15 * time.Millisecond, -1},
		{"keel: bootstate device", 30 * time.Millisecond, -1},
	}
	for i, c := range cuts {
		before := diskStatus(t, f.disk.Path)
		m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}})
		m.Expect(c.after)
		time.Sleep(c.delay)
		m.Kill()
		after := diskStatus(t, f.disk.Path)
		t.Logf("cut %d after %q +%v: sequence %d -> %d, a tries %d -> %d, warnings %q", i+1, c.after, c.delay,
			before.Sequence, after.Sequence, before.slot(t, "a").Tries, after.slot(t, "a").Tries, after.Warnings)
		checkCut(t, c, before, after)
	}
	// The disk still boots, from where the cuts left it.
	left := diskStatus(t, f.disk.Path).slot(t, "a").Tries
	wantTriesLeft(t, f.boot(t, "", "a"), left-1)
}

// checkCut compares the boot state before and after a power cut.
func checkCut(t *testing.T, c powerCut, before, after bootState) {
	t.Helper()
	if !after.Initialised || after.Sequence < before.Sequence {
		t.Errorf("cut after %q: state %+v: want a valid record, sequence at least %d", c.after, after, before.Sequence)
	}
	for _, x := range []string{"a", "b"} {
		b, a := before.slot(t, x), after.slot(t, x)
		used := b.Tries - a.Tries
		if used < 0 || a.Priority > b.Priority || a.Good != b.Good {
			t.Errorf("cut after %q: slot %s went from %+v to %+v: no slot may gain tries or priority", c.after, x, b, a)
		}
		want := 0
		if x == "a" {
			want = c.decrement
		}
		if want >= 0 && used != want || want < 0 && used > 1 {
			t.Errorf("cut after %q: slot %s used %d tries (%d -> %d), want %s", c.after, x, used, b.Tries, a.Tries, wantUsed(want))
		}
	}
}

func wantUsed(n int) string {
	if n < 0 {
		return "0 or 1"
	}
	return fmt.Sprint(n)
}
