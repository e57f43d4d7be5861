// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
)

// sealedIndex seals an image with a rollback index.
func sealedIndex(t *testing.T, dir, name, key, index string) (img, ver string) {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	img, ver = makeImage(t, sub), filepath.Join(sub, "verity.img")
	mustRun(t, nil, "seal", "--image", img, "--out", ver, "--key", key, "--image-id", name, "--rollback-index", index)
	return img, ver
}

// TestLostBootStateRefused: the bootstate partition the running boot left
// a record on (boot.json's bootstate_seq, on its bootstate device), found
// erased (a flash fault, a stray blkdiscard or wipefs), is not taken for a
// new machine's: an install over the only good slot, below the rollback
// floor, while the running trial is unconfirmed, and a mark-good, are
// refused, naming it, and nothing is written (the data partition's copy,
// which the next boot restores from, included). Taken for new, its
// defaults (no good slot, floor 0) let the install overwrite the only
// image that worked with an older one, and gave the trial fresh tries.
// Another partition (one being provisioned), or one blank at boot and left
// so (slot= on a new machine), is still new.
func TestLostBootStateRefused(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	oldImg, oldVer := sealedIndex(t, dir, "old", key, "3")
	goodImg, goodVer := sealedIndex(t, dir, "good", key, "5")
	writeSlot(t, disk, "a", goodImg, goodVer)
	blank := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, bootstate.BootStateMinSize), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bs := blank("bootstate")
	onA := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", ImageID: "good", RollbackIndex: 5})
	mustRun(t, nil, "mark-good", "--disk", disk, "--bootstate", bs, "--boot-report", onA)
	tries := 2
	onB := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b", ImageID: "new", RollbackIndex: 6, TriesLeft: &tries,
		BootStateSeq: 7, Devices: map[string]string{"bootstate": bs}})
	blank("bootstate") // erased after the boot
	for _, args := range [][]string{
		{"install", "--slot", "a", oldImg, oldVer, "--disk", disk, "--bootstate", bs, "--boot-report", onB},
		{"mark-good", "--disk", disk, "--bootstate", bs, "--boot-report", onB},
	} {
		r := slotctl(t, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "holds no valid boot state record, yet this boot left record 7 there") {
			t.Errorf("%s on the erased bootstate: exit %d, %q: want it refused, naming the erasure", args[0], r.code, r.stderr)
		}
	}
	if v := statusJSON(t, "--disk", disk, "--bootstate", bs); v.Initialised {
		t.Errorf("status %+v: the refused commands wrote the erased partition", slotStates(v))
	}
	if h := readSlotHeader(t, disk, "a"); h.ImageID != "good" {
		t.Errorf("slot a holds %s: the refused install overwrote the only good image", h.ImageID)
	}
	// Another partition, blank: one being provisioned on this machine.
	mustRun(t, nil, "mark-good", "--disk", disk, "--bootstate", blank("other"), "--boot-report", onB)
	// Blank at boot and left so (a slot= boot of a new machine): new.
	fresh := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", ImageID: "good", RollbackIndex: 5, Devices: map[string]string{"bootstate": bs}})
	mustRun(t, nil, "mark-good", "--disk", disk, "--bootstate", bs, "--boot-report", fresh)
}

// readSlotHeader reads slot x's header from disk.
func readSlotHeader(t *testing.T, disk string, x slots.Slot) *slots.Header {
	t.Helper()
	p, err := openInDisk(disk, x.VerityLabel(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h, err := slots.ReadHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMarkGoodKeepsAnAskedRollback: the trial b runs unconfirmed, a
// rollback to the good slot a is asked for (set-next a), then b is
// confirmed all the same (keel-mark-good.service). The floor stays at a's
// index, said on stderr, so the locked init boots a as asked; raised to
// b's, the locked init refused a as an image fault and retired the good
// slot that was asked for.
func TestMarkGoodKeepsAnAskedRollback(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	fiveImg, fiveVer := sealedIndex(t, dir, "five", key, "5")
	sevenImg, sevenVer := sealedIndex(t, dir, "seven", key, "7")
	writeSlot(t, disk, "a", fiveImg, fiveVer)
	onA := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", ImageID: "five", RollbackIndex: 5, Locked: true})
	mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", onA)
	mustRun(t, nil, "install", "--slot", "b", sevenImg, sevenVer, "--disk", disk, "--boot-report", onA, "--trust", key+".pub")
	onB := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b", ImageID: "seven", RollbackIndex: 7, Locked: true})
	mustRun(t, nil, "set-next", "a", "--disk", disk, "--boot-report", onB)
	r := slotctl(t, nil, "mark-good", "--disk", disk, "--boot-report", onB)
	if r.code != 0 || !strings.Contains(r.stderr, "the rollback floor stays at 5 instead of 7") {
		t.Errorf("mark-good of b with a rollback to a pending: exit %d, %q: want done, the floor held, said", r.code, r.stderr)
	}
	p, err := openInDisk(disk, bootstate.Label, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, _, err := bootstate.Load(p)
	if err != nil || s.RollbackFloor != 5 || !s.Slot("b").Good {
		t.Fatalf("state %+v, %v: want b good, the floor at 5", s, err)
	}
	// The next boot, as the locked init makes it: an image below the floor
	// is an image fault.
	sel, err := bootstate.Select(p, s, bootstate.Request{}, func(c bootstate.Choice) error {
		if h := readSlotHeader(t, disk, c.Slot); h.RollbackIndex < s.RollbackFloor {
			return bootstate.Classify(bootstate.Image, "rollback", errors.New("below the floor"))
		}
		return nil
	})
	if err != nil || sel.Choice.Slot != "a" || len(sel.Fallbacks) != 0 {
		t.Errorf("the next boot: %s, %v, fallbacks %+v: want a, as asked", sel.Choice.Slot, err, sel.Fallbacks)
	}
}

// TestRaucSetPrimaryKeepsTheTrialsTries: `rauc status mark-active booted`
// on a running trial gives it the top priority only: the tries it has
// left stay, so an agent that asserts the booted slot at every boot cannot
// keep a trial that never comes up booting for ever. With none left it is
// refused (boot counting would not choose it). It used to get fresh tries.
func TestRaucSetPrimaryKeepsTheTrialsTries(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	imgA, verA := sealedImage(t, dir, "image-a", key)
	imgB, verB := sealedImage(t, dir, "image-b", key)
	writeSlot(t, disk, "a", imgA, verA)
	mustRun(t, nil, "mark-good", "a", "--disk", disk)
	mustRun(t, nil, "install", "--slot", "b", imgB, verB, "--disk", disk, "--tries", "2")
	editState(t, disk, func(s *bootstate.State) {
		if c, err := s.Choose("", 0); err != nil || c.Slot != "b" { // the init's count of b's first boot
			t.Fatal(c, err)
		}
	})
	onB := writeReport(t, dir, report.Report{Mode: "slot", Slot: "b", ImageID: "image-b"})
	rauc(t, nil, disk, onB, "set-primary", "b")
	if st := slotStates(statusJSON(t, "--disk", disk)); st[1].Tries != 1 || st[1].Priority != 2 || st[1].Good {
		t.Errorf("b after set-primary of the running trial: %+v, want priority 2 and its 1 try left", st[1])
	}
}

// TestRaucSetPrimaryEndsRestoreMark: after a restore from the data
// partition's copy, the other slot is a trial marked good in the copy, and
// the running good slot at its limit of unconfirmed boots would be demoted
// below it (bootstate.ReasonRestoredGood). `rauc status mark-active booted`
// is the operator's choice, as set-next is: it ends the mark, and the
// running slot boots next. It used to be refused (boot counting chose the
// marked trial).
func TestRaucSetPrimaryEndsRestoreMark(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	imgA, verA := sealedImage(t, dir, "image-a", key)
	writeSlot(t, disk, "a", imgA, verA)
	mustRun(t, nil, "mark-good", "a", "--disk", disk)
	editState(t, disk, func(s *bootstate.State) {
		s.Slots[0].Unconfirmed = bootstate.DefaultMaxUnconfirmed
		s.Slots[1] = bootstate.SlotState{Priority: 1, Tries: bootstate.DefaultTries, Reason: bootstate.ReasonRestoredGood}
	})
	onA := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "image-a"})
	rauc(t, nil, disk, onA, "set-primary", "a")
	if st := slotStates(statusJSON(t, "--disk", disk)); st[0].Priority != 2 || !st[0].Good || st[1].Reason != "" || st[1].Priority != 1 || st[1].Tries != bootstate.DefaultTries {
		t.Errorf("after set-primary of the running a: a %+v, b %+v: want a first, b a trial without the restore's mark", st[0], st[1])
	}
}

// TestRaucUsesTheInitsLimit: both slots good, a running with two boots
// unconfirmed under an init built with --max-unconfirmed 2, which demotes
// a at the next boot: get-primary says b, as the init will choose, and
// set-primary of the running a is refused (boot counting would not choose
// it); under the default limit, a. The backend judged by the default limit
// alone: get-primary said a, and set-primary a was taken, though the init
// booted b.
func TestRaucUsesTheInitsLimit(t *testing.T) {
	for _, c := range []struct {
		limit int
		want  string
	}{{2, "b"}, {0, "a"}} {
		dir, disk, key := keyedDisk(t)
		imgA, verA := sealedImage(t, dir, "image-a", key)
		writeSlot(t, disk, "a", imgA, verA)
		writeSlot(t, disk, "b", imgA, verA)
		mustRun(t, nil, "mark-good", "b", "--disk", disk)
		mustRun(t, nil, "mark-good", "a", "--disk", disk)
		editState(t, disk, func(s *bootstate.State) {
			s.Slots[0].Priority, s.Slots[1].Priority, s.Slots[0].Unconfirmed = 2, 1, 2
		})
		onA := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", ImageID: "image-a", MaxUnconfirmed: c.limit})
		if got := strings.TrimSpace(rauc(t, nil, disk, onA, "get-primary")); got != c.want {
			t.Errorf("limit %d: get-primary %q, want %q", c.limit, got, c.want)
		}
		r := slotctl(t, nil, "rauc-backend", "--disk", disk, "--boot-report", onA, "set-primary", "a")
		if (r.code == 0) != (c.want == "a") {
			t.Errorf("limit %d: set-primary of the running a: exit %d %s; want it refused only when boot counting chooses b", c.limit, r.code, r.stderr)
		}
	}
}

// TestFloorHoldUsesTheInitsLimit: whether the good slot asked for boots
// next is judged with the limit of unconfirmed boots the init reported
// (mkinitrd --max-unconfirmed): a at its limit is demoted by the init, b
// boots next, and the floor rises to b's index; under the default limit a
// would still boot, and the floor is held at a's.
func TestFloorHoldUsesTheInitsLimit(t *testing.T) {
	for _, c := range []struct {
		limit int
		floor uint64
	}{{2, 7}, {0, 5}} {
		dir, disk, key := keyedDisk(t)
		fiveImg, fiveVer := sealedIndex(t, dir, "five", key, "5")
		sevenImg, sevenVer := sealedIndex(t, dir, "seven", key, "7")
		writeSlot(t, disk, "a", fiveImg, fiveVer)
		onA := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", ImageID: "five", RollbackIndex: 5})
		mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", onA)
		mustRun(t, nil, "install", "--slot", "b", sevenImg, sevenVer, "--disk", disk, "--boot-report", onA)
		onB := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b", ImageID: "seven", RollbackIndex: 7, MaxUnconfirmed: c.limit})
		mustRun(t, nil, "set-next", "a", "--disk", disk, "--boot-report", onB)
		editState(t, disk, func(s *bootstate.State) { s.Slots[0].Unconfirmed = 2 }) // a's boots since, unconfirmed
		mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", onB)
		if v := statusJSON(t, "--disk", disk); v.RollbackFloor != c.floor {
			t.Errorf("limit %d: floor %d, want %d", c.limit, v.RollbackFloor, c.floor)
		}
	}
}

// editState changes disk's boot state as a boot of the init would: loaded,
// edited, saved.
func editState(t *testing.T, disk string, edit func(s *bootstate.State)) {
	t.Helper()
	p, err := openInDisk(disk, bootstate.Label, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, _, err := bootstate.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	edit(&s)
	if err := bootstate.Save(p, &s); err != nil {
		t.Fatal(err)
	}
}
