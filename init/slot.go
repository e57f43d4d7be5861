package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// slotBoot selects the A/B slot with boot counting and assembles its root;
// a slot that fails is marked bad and the other one is tried in this boot.
func (b *boot) slotBoot(layout mounts.Layout) error {
	b.rep.Mode = "slot"
	var forced slots.Slot
	if b.cfg.Slot != "" {
		s, err := slots.ParseSlot(b.cfg.Slot)
		if err != nil {
			return err
		}
		forced = s
	}
	st, closeStore := b.bootState(forced != "")
	defer closeStore()
	sel, err := slots.Select(st, forced, func(c slots.Choice) error {
		b.log.Infof("slot %s: %s", c.Slot, c.Reason)
		return b.trySlot(layout, c.Slot)
	})
	for _, w := range sel.Warnings {
		b.log.Warnf("boot state: %s", w)
		b.rep.Warn("boot state: %s", w)
	}
	for _, f := range sel.Fallbacks {
		b.rep.Fallbacks = append(b.rep.Fallbacks, report.Fallback{Slot: string(f.Slot), Reason: f.Reason})
		if err == nil {
			b.log.Warnf("slot %s failed, fell back: %s", f.Slot, f.Reason)
		}
	}
	if err != nil {
		return noBootableSlot(err, sel)
	}
	c := sel.Choice
	b.rep.Slot, b.rep.SlotReason = string(c.Slot), c.Reason
	if !c.Forced {
		tries := c.TriesLeft
		b.rep.TriesLeft = &tries
	}
	return nil
}

// noBootableSlot is the error for the console: why each slot failed.
func noBootableSlot(err error, sel slots.Selection) error {
	var why []string
	for _, f := range sel.Fallbacks {
		why = append(why, fmt.Sprintf("slot %s: %s", f.Slot, f.Reason))
	}
	if len(why) == 0 {
		return err
	}
	return fmt.Errorf("%w\n  %s", err, strings.Join(why, "\n  "))
}

// trySlot assembles one slot's root; on failure it undoes its mounts and
// its dm device so the other slot starts clean.
func (b *boot) trySlot(layout mounts.Layout, slot slots.Slot) error {
	b.stack = mounts.NewStack()
	b.resetRootReport()
	b.rep.Slot = string(slot) // names the persistent upper of this attempt
	img, err := b.slotImage(slot)
	if err == nil {
		err = b.mountImage(layout, img)
	}
	if err == nil {
		return nil
	}
	for _, e := range b.stack.Undo() {
		b.log.Warnf("undo slot %s: %v", slot, e)
	}
	if img != nil && b.rep.Devices["verity"] != "" {
		if e := verity.Close(img.name); e != nil {
			b.log.Warnf("undo slot %s: %v", slot, e)
		}
	}
	return err
}

// resetRootReport clears what a failed attempt may have left in the report.
func (b *boot) resetRootReport() {
	bs := b.rep.Devices["bootstate"]
	b.rep.Devices = map[string]string{}
	if bs != "" {
		b.rep.Devices["bootstate"] = bs
	}
	b.rep.ImageID, b.rep.RootHash, b.rep.KeyID, b.rep.HashSource = "", "", "", ""
	b.rep.Authenticated = false
}

// bootState opens the bootstate partition. Without one, boot counting runs
// in memory: the boot goes on, loudly, but tries are not durable. A forced
// slot= does not touch the counters, so it does not wait for the device.
func (b *boot) bootState(forced bool) (slots.Store, func()) {
	mem := func(why string) (slots.Store, func()) {
		if !forced {
			b.log.Warnf("boot counting is not durable: %s", why)
			b.rep.Warn("boot counting is not durable: %s", why)
		}
		return slots.NewMemStore(slots.BootStateMinSize), func() {}
	}
	if forced {
		return mem("")
	}
	dev, err := b.waitForOr(slots.BootStateLabel, b.cfg.BootState)
	if err != nil {
		return mem(err.Error())
	}
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return mem(fmt.Sprintf("open %s: %v", dev, err))
	}
	b.rep.Devices = map[string]string{"bootstate": dev}
	return f, func() {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			b.log.Warnf("close %s: %v", dev, err)
		}
	}
}
