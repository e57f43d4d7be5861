// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ed25519"
	"fmt"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
)

// runMarkGood confirms the running boot: the booted slot stops using up
// tries. keel-mark-good.service runs it once boot-complete.target is
// reached. It is idempotent.
func runMarkGood(e *env, args []string) error {
	fs := newFlags(e, "mark-good")
	t := targetFlags(e, fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	x, err := t.markGoodSlot(pos)
	if err != nil {
		return err
	}
	if x == "" {
		fmt.Fprintln(e.stdout, "this boot did not come from an A/B slot (boot report mode is not \"slot\"): nothing to mark good")
		return nil
	}
	return t.markGood(e, x)
}

// markGood confirms slot x, checked by markGoodSlot: on the running
// system only the running slot is confirmed.
func (t *target) markGood(e *env, x slots.Slot) error {
	if _, err := t.markGoodSlot([]string{string(x)}); err != nil {
		return err
	}
	if why := t.countedInMemory(); why != "" {
		fmt.Fprintf(e.stdout, "slot %s is not marked good: %s\n", x, why)
		return nil
	}
	id, rollback, noData := t.goodImage(e, x)
	var was bootstate.State
	kept := false
	held := ""
	s, err := t.withState(func(s *bootstate.State) error {
		was = *s
		kept = noData && s.DataSeen && id != ""
		mid := id
		if kept {
			mid = ""
		}
		if err := s.MarkGood(x, mid, rollback); err != nil {
			return err
		}
		held = t.holdFloorForRollback(s, x, was.RollbackFloor)
		return nil
	})
	if err != nil {
		return err
	}
	if held != "" {
		fmt.Fprintf(e.stderr, "slotctl mark-good: warning: %s\n", held)
	}
	if kept {
		fmt.Fprintf(e.stdout, "slot %s: the last good image is not moved to %s: this boot used no data partition (data=none?) though earlier boots did, so its /etc changes are not kept\n", x, id)
	}
	if was == s {
		fmt.Fprintf(e.stdout, "slot %s is already good (%s)\n", x, s.Slot(x))
		return nil
	}
	fmt.Fprintf(e.stdout, "slot %s marked good (%s)\n", x, s.Slot(x))
	return nil
}

// holdFloorForRollback keeps the rollback floor, which confirming slot x
// raised, at or below the index of the other slot when boot counting boots
// that one next: a rollback asked for while x ran unconfirmed (slotctl
// set-next, rauc status mark-active other), accepted then since its image
// was at the floor. Raised above it, the locked init would refuse the
// image at the next boot as an image fault and retire the good slot that
// was asked for (found by a hunting helper). The floor rises to x's index
// at x's next confirmation. It says what it did, "" when nothing.
func (t *target) holdFloorForRollback(s *bootstate.State, x slots.Slot, before uint64) string {
	y := x.Other()
	if next, err := bootsNext(*s, t.initsLimit()); err != nil || next != y || !s.Slot(y).Good || s.RollbackFloor <= before {
		return "" // a trial below the floor: the locked init refuses it, as it must
	}
	h, err := t.slotHeader(y)
	if err != nil || h.RollbackIndex >= s.RollbackFloor {
		return ""
	}
	raised := s.RollbackFloor
	s.RollbackFloor = max(before, h.RollbackIndex)
	return fmt.Sprintf("slot %s boots next (a rollback was asked for) and holds image %s with rollback index %d: the rollback floor stays at %d instead of %d, so that a locked initramfs boots it; it rises when slot %s is confirmed again", y, h.ImageID, h.RollbackIndex, s.RollbackFloor, raised, x)
}

// bootsNext is the slot boot counting chooses from s (a copy: Choose's
// decrement stays here), with the init's limit of unconfirmed boots (0:
// the default; initsLimit).
func bootsNext(s bootstate.State, maxUnconfirmed int) (slots.Slot, error) {
	c, err := s.Choose("", maxUnconfirmed)
	if err != nil {
		return "", err
	}
	return c.Slot, nil
}

// initsLimit is the limit of unconfirmed boots the init reported
// (mkinitrd --max-unconfirmed), 0 (the default) without a report: what
// boot counting chooses next depends on it.
func (t *target) initsLimit() int {
	if r, err := t.bootReport(); err == nil && r != nil {
		return r.MaxUnconfirmed
	}
	return 0
}

// markGoodSlot is the slot to mark: the running one, or on a disk image
// the one named. "" means the system did not boot from a slot.
func (t *target) markGoodSlot(pos []string) (slots.Slot, error) {
	run, err := t.running()
	if err != nil {
		return "", err
	}
	if len(pos) == 0 {
		if run == "" && t.disk != "" {
			return "", usagef("a disk image runs no slot: name the slot to mark good")
		}
		return run, nil
	}
	x, err := slotArg(pos)
	if err != nil {
		return "", err
	}
	if t.disk == "" && x != run {
		return "", fmt.Errorf("slot %s is not the running slot (%s): mark-good confirms the boot that is running", x, orNone(run))
	}
	return x, nil
}

func orNone(x slots.Slot) string {
	if x == "" {
		return "none"
	}
	return string(x)
}

// goodImage is the image id and rollback index of the image slot x runs:
// the boot report's when x is the running slot (what was verified and
// booted), else its header's. Without either the slot is still marked
// good, but the last good image and the rollback floor stay as they were.
//
// The last good image is also where the next update's /etc merge reads the
// machine's configuration from, and its upper is kept from pruning. A boot
// whose /etc was not on the data partition's upper — volatile (the
// partition could not be used), overlay=tmpfs with a data partition, or a
// first boot whose merge failed — confirms the slot and raises the floor,
// but leaves the last good image where the configuration is: moved to this
// image, its next persistent boot would start an empty upper with nothing
// merged, and the next update would prune the upper that held it.
//
// noData reports a running boot with no data partition at all (data=none):
// its /etc was not kept either when an earlier boot used one (the boot
// state's DataSeen, which markGood checks).
func (t *target) goodImage(e *env, x slots.Slot) (id string, rollback uint64, noData bool) {
	if r, err := t.bootReport(); err == nil && r != nil && r.Mode == "slot" && r.Slot == string(x) && r.ImageID != "" {
		if why := etcNotPersistent(r); why != "" {
			fmt.Fprintf(e.stdout, "slot %s: the last good image is not moved to %s: %s\n", x, r.ImageID, why)
			return "", r.RollbackIndex, false
		}
		return r.ImageID, r.RollbackIndex, r.Data == nil
	}
	h, err := t.slotHeader(x)
	if err != nil {
		fmt.Fprintf(e.stderr, "slotctl mark-good: warning: slot %s: %v: the last good image and the rollback floor are not updated\n", x, err)
		return "", 0, false
	}
	if why := t.unsignedIndex(h, nil); why != "" && h.RollbackIndex != 0 {
		fmt.Fprintf(e.stdout, "slot %s: rollback index %d not counted: %s\n", x, h.RollbackIndex, why)
		return h.ImageID, 0, false
	}
	return h.ImageID, h.RollbackIndex, false
}

// unsignedIndex says why a slot header's rollback index is not one the
// init counts, "" when it is: on a running system, only an index a key
// the init trusts signed counts (docs/formats.md, "Anti-rollback"); without
// keys anyone who writes the slot chooses it. keys, when not nil, are the
// keys to check with (--trust); else the boot report's. A report that
// lists no keys may be an older init's, which listed none: a signed
// header's index counts then, an unsigned one's does not. With --disk (no
// boot report) the operator holding the disk vouches for it, as before.
func (t *target) unsignedIndex(h *slots.Header, keys []ed25519.PublicKey) string {
	if keys == nil {
		r, err := t.bootReport()
		if err != nil || r == nil {
			return ""
		}
		if keys, err = reportKeys(r); err != nil {
			return err.Error()
		}
	}
	if len(keys) == 0 && h.Signed() {
		return ""
	}
	if len(keys) == 0 {
		return "the header is not signed and the running initramfs trusts no keys"
	}
	if ok, err := h.Authenticate(keys); !ok {
		return fmt.Sprintf("not signed by a key the running initramfs trusts (%v)", err)
	}
	return ""
}

// belowFloor is checkFloor for an index the init counts (unsignedIndex,
// with keys): one it does not count is never below the floor, the
// locked init booting it without a check, and note then says so when it
// is below (a floor raised by the old rule, from an unsigned index).
func (t *target) belowFloor(h *slots.Header, floor uint64, what string, keys []ed25519.PublicKey) (err error, note string) {
	if why := t.unsignedIndex(h, keys); why != "" {
		if h.RollbackIndex < floor {
			note = fmt.Sprintf("%s: rollback index %d is below the floor %d but not counted: %s", what, h.RollbackIndex, floor, why)
		}
		return nil, note
	}
	return checkFloor(h, floor, what), ""
}

// countedInMemory says why the running boot's confirmation must not be
// written, "" when it may: the init counted this boot in memory (its boot
// report names no bootstate device: the partition was missing, unreadable,
// or late; one the partition table does not list is not waited for), so
// the slot it chose may be one the state on disk has retired, and marking
// it good there — priority 0, a floor raised to its index — could leave no
// slot to boot. The state on
// disk is left as the last durable boot left it; --bootstate names a
// partition to confirm the slot on anyway.
func (t *target) countedInMemory() string {
	if t.disk != "" || t.bootstate != "" {
		return ""
	}
	r, err := t.bootReport()
	if err != nil || r == nil || r.Mode != "slot" || r.Devices["bootstate"] != "" {
		return ""
	}
	return "this boot was counted in memory (no boot state partition was read: see the warnings of " + report.Path + "), so the boot state on disk is left as it is; `slotctl mark-good --bootstate DEVICE` confirms it there anyway"
}

// etcNotPersistent says why the boot r reports kept /etc off the data
// partition's upper, "" when it did not (or had no data partition at all).
func etcNotPersistent(r *report.Report) string {
	switch d := r.Data; {
	case d == nil:
		return ""
	case d.Volatile:
		return "this boot could not use the data partition (volatile), so its /etc changes are not kept"
	case d.Upper == "" || r.Overlay != "persistent":
		return "this boot's overlay is not on the data partition (overlay=" + r.Overlay + "), so its /etc changes are not kept"
	case r.EtcMerge != nil && r.EtcMerge.Error != "":
		return "this boot's /etc merge failed (" + r.EtcMerge.Error + "): the machine's configuration stays in the last good image's upper"
	}
	return ""
}

// slotHeader reads slot x's header from its verity partition.
func (t *target) slotHeader(x slots.Slot) (*slots.Header, error) {
	p, err := t.open(x.VerityLabel(), false)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	h, err := slots.ReadHeader(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return h, nil
}
