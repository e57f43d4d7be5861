// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
	"golang.org/x/sys/unix"
)

// bootState is the boot-counting state of this boot: where it is stored and
// what was read, loaded once (loadBootState) before the data partition and
// the slot are chosen.
type bootState struct {
	store bootstate.Store
	state bootstate.State
	close func()
	// unavailable is set when the state is counted in memory because the
	// bootstate partition, which this machine has, could not be used in
	// this boot (late, unreadable): its state, the last good image
	// included, is unknown rather than absent.
	unavailable bool
	// garbage: the bootstate partition's record copies hold neither blank
	// bytes nor keel records, and no file system or other signature
	// (bootstate.ErrGarbage). The state is absent, unless the data
	// partition holds slotctl's copy of it, which proves this machine kept
	// one: then it is lost, and unavailable (stateFromCopy).
	garbage bool
	// fromCopy is set once the data partition's copy was looked for
	// (stateFromCopy).
	fromCopy bool
	// inMemory: counted in memory (memBootState), nothing is durable.
	inMemory bool
	// blank: the bootstate partition held nothing a boot learned when it
	// was read (bootstate.State.Pristine: no valid record, both records
	// damaged or flashed blank, or only the data mount count of a boot
	// that went no further): restoreFromCopy.
	blank bool
	// refused is why no slot may boot: a locked boot whose baked
	// bootstate= matches more than one device (memBootState).
	refused error
}

// slotBoot selects the A/B slot with boot counting and assembles its root;
// a slot that fails is tried no further in this boot and, for an image
// fault only, marked bad (docs/boot-sequence.md, "Failure classes").
func (b *boot) slotBoot(layout mounts.Layout) error {
	b.rep.Mode = "slot"
	forced, err := b.forcedSlot()
	if err != nil {
		return err
	}
	bs := b.loadBootState()
	defer bs.close()
	if bs.refused != nil {
		return fmt.Errorf("no slot is booted: %w", bs.refused)
	}
	b.stateFromCopy(bs, b.slotHeaderID)
	b.restoreFromCopy(bs, b.slotImageID)
	if forced != "" && b.baked.Locked {
		if err := bs.state.CheckForced(forced); err != nil {
			b.refuseForced(forced, err)
			forced = ""
		}
	}
	req := bootstate.Request{Forced: forced, MaxUnconfirmed: b.maxUnconfirmed(), DataUsed: b.data != nil,
		// Left alone (unfinishedMounts): a good slot, not a trial, comes up.
		PreferGood: b.data == nil && bs.state.DataMountUnfinished(),
		// Counted in memory: a trial's try is forgotten, so a good slot
		// is demoted only below the other good slot.
		InMemory: bs.inMemory,
		// Unmounted before the write that ends the data mount's count.
		AfterAttempts: b.settleData}
	sel, err := bootstate.Select(bs.store, bs.state, req, func(c bootstate.Choice) error {
		b.log.Infof("slot %s: %s", c.Slot, c.Reason)
		return b.trySlot(layout, c.Slot)
	})
	bs.state = sel.State
	if !bs.inMemory && sel.State.Initialised {
		b.rep.BootStateSeq = sel.State.Seq
	}
	b.reportSelection(sel, err)
	if err != nil {
		return noBootableSlot(err, sel)
	}
	return nil
}

// forcedSlot parses slot=, "" for boot counting.
func (b *boot) forcedSlot() (bootstate.Slot, error) {
	if b.cfg.Slot == "" {
		return "", nil
	}
	return slots.ParseSlot(b.cfg.Slot)
}

// maxUnconfirmed is how many boots of a good slot may go unconfirmed
// (baked by mkinitrd --max-unconfirmed), reported with the count.
func (b *boot) maxUnconfirmed() int {
	n := b.baked.MaxUnconfirmed
	if n <= 0 {
		n = bootstate.DefaultMaxUnconfirmed
	}
	b.rep.MaxUnconfirmed = n
	return n
}

// refuseForced says on the console (also with quiet) and in the report's
// refused list that slot= was refused.
func (b *boot) refuseForced(x bootstate.Slot, why error) {
	reason := fmt.Sprintf("refused: the initramfs is locked and %v; boot counting chooses", why)
	b.loud("command line: slot=%s: %s", x, reason)
	b.rep.Refused = append(b.rep.Refused, report.Refused{Option: "slot=" + string(x), Reason: reason})
}

// reportSelection records the outcome of boot counting.
func (b *boot) reportSelection(sel bootstate.Selection, err error) {
	for _, w := range sel.Warnings {
		b.log.Warnf("boot state: %s", w)
		b.rep.Warn("boot state: %s", w)
	}
	for _, f := range sel.Fallbacks {
		b.rep.Fallbacks = append(b.rep.Fallbacks, report.Fallback{Slot: string(f.Slot), Reason: f.Reason, Class: f.Class.String(), Retired: f.Retired})
		if err == nil {
			b.log.Warnf("slot %s failed (%s), fell back: %s", f.Slot, f.Class, f.Reason)
		}
	}
	if err != nil {
		return
	}
	c := sel.Choice
	b.rep.Slot, b.rep.SlotReason = string(c.Slot), c.Reason
	b.rep.Demoted = string(c.Demoted)
	if c.Demoted != "" {
		b.log.Warnf("slot %s demoted: %s", c.Demoted, sel.State.Slot(c.Demoted).Reason)
	}
	if c.Forced {
		return
	}
	tries := c.TriesLeft
	b.rep.TriesLeft, b.rep.Unconfirmed = &tries, c.Unconfirmed
}

// noBootableSlot is the error for the console: why each slot failed.
func noBootableSlot(err error, sel bootstate.Selection) error {
	var why []string
	for _, f := range sel.Fallbacks {
		why = append(why, fmt.Sprintf("slot %s (%s): %s", f.Slot, f.Class, f.Reason))
	}
	if len(why) == 0 {
		return err
	}
	return fmt.Errorf("%w\n  %s", err, strings.Join(why, "\n  "))
}

// trySlot assembles one slot's root; on failure it undoes its mounts and
// its dm device so the other slot starts clean. Its errors are classified
// (fault).
func (b *boot) trySlot(layout mounts.Layout, slot bootstate.Slot) error {
	b.stack = mounts.NewStack()
	b.resetRootReport()
	b.reclaimData(slot)
	b.inAttempt = true
	defer func() { b.inAttempt = false }()
	b.rep.Slot = string(slot) // names the persistent upper of this attempt
	img, err := b.slotImage(slot)
	if err == nil {
		err = b.bootable(slot, img)
	}
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
	b.rep.RollbackIndex, b.rep.Authenticated = 0, false
	// A failed attempt's /etc merge is not this root's (its record stays
	// next to the upper it made); slotctl mark-good reads etc_merge.
	b.rep.EtcMerge = nil
}

// imageRollback checks an image's rollback index against the floor when a
// trusted key signed it for the root hash in use; an unsigned one is only
// named.
func (b *boot) imageRollback(what string, img *image) error {
	switch {
	case img.rollbackSigned:
		return b.checkRollback(what, img.rollback)
	case img.rollback != 0:
		b.log.Warnf("%s: rollback index %d not signed by a trusted key for the root hash in use: not checked against the floor, and not recorded", what, img.rollback)
	}
	return nil
}

// checkRollback enforces the anti-rollback floor on an image: a locked
// init refuses an index below the highest one marked good; an unlocked one
// says so and boots it.
func (b *boot) checkRollback(what string, index uint64) error {
	floor := b.loadBootState().state.RollbackFloor
	if index >= floor {
		return nil
	}
	msg := fmt.Sprintf("%s: rollback index %d is below this machine's floor %d (an older image than one already marked good)", what, index, floor)
	if b.baked.Locked {
		return fault(stepRollback, errors.New(msg+": refused, the initramfs is locked"))
	}
	b.log.Warnf("%s: booting it, the initramfs is not locked", msg)
	b.rep.Warn("%s", msg)
	return nil
}

// dataSeenBefore reports whether an earlier boot used a data partition:
// then it is waited for like any required device.
func (b *boot) dataSeenBefore() bool {
	if b.cfg.Root != "" {
		return false // single and plain roots keep no boot state
	}
	return b.loadBootState().state.DataSeen
}

// lastGood is the image the machine last marked good (the /etc merge's
// source of local changes).
func (b *boot) lastGood() (slot, imageID string, ok bool) {
	if b.cfg.Root != "" {
		return "", "", false
	}
	bs := b.loadBootState()
	if bs.unavailable {
		// Not the copy's (stateFromCopy): it lacks what the init counted
		// and may be stale; the merge waits for the boot state itself.
		return "", "", false
	}
	lg := bs.state.LastGood
	return string(lg.Slot), lg.ImageID, lg.Slot != ""
}

// loadBootState opens and reads the bootstate partition, once. Without one,
// or with one that holds something else than keel records (a file system:
// keel never writes over it), boot counting runs in memory: the boot goes
// on, loudly, slots chosen by their default priority.
func (b *boot) loadBootState() *bootState {
	if b.bs != nil {
		return b.bs
	}
	dev, err := b.bootStateDevice()
	var f *os.File
	if err == nil {
		// Not O_SYNC: bootstate.Save makes its record durable with one
		// fsync, which on a block device writes the record and flushes
		// the disk's cache; with O_SYNC the write itself would flush as
		// well, two flushes per boot for the same guarantee (each one an
		// fdatasync of the disk image under QEMU: 0.02–0.1 s here).
		f, err = os.OpenFile(dev, os.O_RDWR, 0)
	}
	if err == nil {
		if err = bootstate.CheckWritable(f); err != nil {
			f.Close()
			err = fmt.Errorf("bootstate device %s: %w", dev, err)
		}
	}
	if err != nil {
		b.bs = b.memBootState(err)
		return b.bs
	}
	if b.rep.Devices == nil {
		b.rep.Devices = map[string]string{}
	}
	b.rep.Devices["bootstate"] = dev
	b.bs = &bootState{store: f, close: func() {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			b.log.Warnf("close %s: %v", dev, err)
		}
	}}
	b.readBootState()
	return b.bs
}

// bootStateDevice resolves bootstate= or the default label on the system
// disk. A bootstate partition the system disk's table does not list is no
// wait: the table shows at once that it has none.
func (b *boot) bootStateDevice() (string, error) {
	return b.waitForOr(bootstate.Label, b.cfg.BootState)
}

// memBootState is boot counting in memory, with why. On a locked
// initramfs a baked bootstate= that matches more than one device (a stick
// carrying a copy of its id, which is no secret) refuses every slot
// instead (bootState.refused): counted in memory from the defaults, the
// rollback floor would be 0, and the older signed image in the other slot
// would boot. Locked, the line is on the console whatever the log level.
func (b *boot) memBootState(why error) *bootState {
	var amb *ambiguousError
	if b.baked.Locked && errors.As(why, &amb) {
		bs := &bootState{store: bootstate.NewMemStore(bootstate.BootStateMinSize), close: func() {}, inMemory: true, refused: why}
		b.bs = bs
		b.readBootState() // the defaults, for the data phase before the refusal
		return bs
	}
	switch {
	case b.baked.Locked:
		b.warnLoud("boot counting is not durable: %v", why)
	case b.cfg.Slot == "":
		b.log.Warnf("boot counting is not durable: %v", why)
		b.rep.Warn("boot counting is not durable: %v", why)
	}
	bs := &bootState{store: bootstate.NewMemStore(bootstate.BootStateMinSize), close: func() {},
		unavailable: unavailable(why), garbage: errors.Is(why, bootstate.ErrGarbage), inMemory: true}
	b.bs = bs
	b.readBootState()
	return bs
}

// unavailable says whether why, the reason boot counting runs in memory,
// leaves the machine's boot state unknown for this boot (a partition that
// is late or cannot be read) rather than absent (the system disk has none,
// or it holds something else than keel records, which keel never writes).
func unavailable(why error) bool {
	return !errors.Is(why, errNoSuchPartition) && !errors.Is(why, bootstate.ErrForeign)
}

// stateFromCopy starts boot counting in memory from the data partition's
// copy of the boot state (bootstate.FromCopy) when the machine's bootstate
// partition cannot be used in this boot (unavailable) and the data
// partition is mounted: a slot retired there stays retired, the rollback
// floor holds, and a trial, whose tries cannot be counted, is held back
// behind a good slot. The defaults would boot slot a, which may be the
// image that crashed. No copy (slotctl has not written one yet) leaves the defaults;
// a copy that cannot be read or parsed is named and not used. The copy's
// last good slot is good only while it holds the copy's last good image
// (imageIn, from the authenticated header): one written since, an update
// whose copy was not written, is a trial (bootstate.Rewritten). A header
// that cannot be read leaves the copy as it is: the slot's attempt fails
// on it, named, and the other slot is tried in the same boot.
//
// A bootstate partition whose records are garbage (bs.garbage: neither
// blank nor keel records, no file system; a sector that gives back other
// bytes) beside a copy is a lost state, not an absent one: the copy is
// used the same way, and the state is unavailable from then on (the last
// good image unknown, the upper frozen, nothing pruned), even when the copy
// itself cannot be used. The defaults booted slot a at every boot, with a
// rollback floor of 0, even a trial that crashes after switch_root, and the
// last good slot never (found by a hunting helper). A file system or
// another signature there stays another tool's: absent.
func (b *boot) stateFromCopy(bs *bootState, imageIn func(slot string) (string, error)) {
	if !(bs.unavailable || bs.garbage) || b.data == nil || bs.fromCopy {
		return
	}
	bs.fromCopy = true
	p := filepath.Join(b.data.root, bootstate.CopyName)
	c, err := readCopy(p)
	if errors.Is(err, fs.ErrNotExist) {
		b.log.Infof("no copy of the boot state at %s: counting from the defaults", p)
		return
	}
	if bs.garbage && !bs.unavailable {
		bs.unavailable = true
		b.warnLoud("the bootstate partition's records hold neither blank bytes nor keel records, but the data partition holds this machine's copy (%s): its boot state was lost, not absent", p)
	}
	if err != nil {
		b.warnLoud("%s: %v: not used, counting from the defaults", p, err)
		return
	}
	if lg := c.LastGood; lg.Slot != "" {
		now, err := imageIn(string(lg.Slot))
		var rewritten bool
		switch {
		case err != nil:
			b.log.Infof("%s names image %s in slot %s as last marked good; the header of slot %s cannot be read to check it: %v", p, lg.ImageID, lg.Slot, lg.Slot, err)
		default:
			if c, rewritten = bootstate.Rewritten(c, now); rewritten {
				b.warnLoud("%s names image %s in slot %s as last marked good, but slot %s now holds %q, never confirmed: it is taken for a trial", p, lg.ImageID, lg.Slot, lg.Slot, now)
			}
		}
	}
	st, held := bootstate.FromCopy(c)
	bs.state = st
	b.warnLoud("boot counting starts from the copy of the boot state on the data partition (%s, sequence %d): %s", p, c.Seq, describeCopy(st, held))
}

// restoreFromCopy starts durable boot counting again from the data
// partition's copy of the boot state when the bootstate partition holds
// nothing a boot learned (bs.blank: both records damaged, the partition
// flashed blank, or only the data mount count of such a boot that went no
// further) and the copy still describes this disk: the image it names as
// last marked good is the one in that slot's header now (imageIn, read
// from the authenticated header). The copy's last good image, rollback
// floor and that slot come back, the slot first; the other slot, which
// the copy names no image for, is a trial below it (bootstate.Restore).
// The defaults booted slot a, which may hold the older image: that boot,
// marked good, made it the last good image, the configuration in the
// other slot's upper was set aside and lost at the next update, and the
// rollback floor was 0. A slot that holds another image (the disk
// provisioned anew, the slot rewritten) or a copy that names no last good
// image keeps the defaults.
func (b *boot) restoreFromCopy(bs *bootState, imageIn func(slot string) string) {
	if !bs.blank || bs.inMemory || b.data == nil {
		return
	}
	bs.blank = false // once per boot
	p := filepath.Join(b.data.root, bootstate.CopyName)
	c, err := readCopy(p)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		b.warnLoud("the bootstate partition holds no boot state, and the copy of the boot state %s: %v: not used, counting from the defaults", p, err)
		return
	}
	lg := c.LastGood
	if lg.Slot == "" {
		b.log.Infof("the bootstate partition holds no boot state; the copy of the boot state at %s names no image last marked good: counting from the defaults", p)
		return
	}
	if id := imageIn(string(lg.Slot)); id != lg.ImageID {
		b.warnLoud("the bootstate partition holds no boot state; the copy of the boot state at %s names image %s in slot %s as last marked good, but slot %s now holds %q: the copy does not describe this disk's slots, counting from the defaults", p, lg.ImageID, lg.Slot, lg.Slot, id)
		return
	}
	st, ok := bootstate.Restore(c, bs.state)
	if !ok {
		return
	}
	bs.state = st
	b.warnLoud("the bootstate partition holds no boot state: boot counting starts again from the copy of the boot state on the data partition (%s, sequence %d), whose last good image, %s in slot %s, is still in its slot: %s", p, c.Seq, lg.ImageID, lg.Slot, describeCopy(st, nil))
}

// readCopy reads the boot state copy at p, never through a symlink.
func readCopy(p string) (bootstate.State, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return bootstate.State{}, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return bootstate.State{}, fmt.Errorf("boot state copy: not a regular file")
	}
	return bootstate.ReadCopy(f)
}

// describeCopy says what boot counting starts from, and which slots it
// holds back.
func describeCopy(s bootstate.State, held []bootstate.Slot) string {
	var parts []string
	for _, x := range bootstate.Slots() {
		parts = append(parts, fmt.Sprintf("slot %s %s", x, s.Slot(x)))
	}
	if lg := s.LastGood; lg.Slot != "" {
		parts = append(parts, fmt.Sprintf("last good %s (%s)", lg.Slot, lg.ImageID))
	}
	for _, x := range held {
		parts = append(parts, fmt.Sprintf("slot %s, not yet good, is tried only if the good slot fails in this boot: its tries cannot be counted while the bootstate partition cannot be used", x))
	}
	return strings.Join(parts, "; ")
}

// readBootState loads the state from the store and reports its warnings.
func (b *boot) readBootState() {
	state, warnings, err := bootstate.Load(b.bs.store)
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	for _, w := range warnings {
		b.log.Warnf("boot state: %s", w)
		b.rep.Warn("boot state: %s", w)
	}
	b.bs.state = state
	b.bs.blank = err == nil && state.Pristine() && !b.bs.inMemory
}

// slotImage finds a slot's partitions and reads and authenticates its header.
func (b *boot) slotImage(slot slots.Slot) (*image, error) {
	dataDev, err := b.waitForOr(slot.RootLabel(), b.cfg.SlotRoot(string(slot)))
	if err != nil {
		return nil, fault(stepImageDevice, err)
	}
	hashDev, err := b.waitForOr(slot.VerityLabel(), b.cfg.SlotVerity(string(slot)))
	if err != nil {
		return nil, fault(stepHashDevice, err)
	}
	raw, err := readHead(hashDev, slots.HeaderSize)
	if err != nil {
		// An I/O error says the device failed, not what the header holds.
		return nil, fault(stepHeaderRead, fmt.Errorf("%s: %w", slot.VerityLabel(), err))
	}
	img, err := b.headerImage(slot.VerityLabel(), dataDev, hashDev, raw)
	if err != nil {
		return nil, fault(stepHeader, err)
	}
	img.name = "keel-root-" + string(slot)
	img.target.Name = img.name
	return img, nil
}

// bootable checks what only a boot of the slot's image needs (not a
// lookup of its image id, nor the /etc merge's base): the rollback floor
// and that its partitions hold what the header says.
func (b *boot) bootable(slot slots.Slot, img *image) error {
	if err := b.imageRollback(slot.VerityLabel(), img); err != nil {
		return err
	}
	return slotFits(img, os.Getpagesize(), devices.Size)
}

// slotFits checks, before dm-verity is opened, that the kernel takes the
// header's block sizes (else the header is the image's fault on this
// machine) and that the slot's partitions, of the sizes size reads, hold
// what the header says: dm-verity would refuse a short data partition
// (EINVAL, a device-mapper fault) and fail a short hash tree's first read
// (EIO, read directly as a failing disk), naming neither. A short
// partition stays an environment fault, as those were: a partition table
// changed under the slot and a disk that reports less than it holds look
// the same from here, and a good slot must not be retired for the disk.
func slotFits(img *image, pageSize int, size func(string) (int64, error)) error {
	if err := img.target.CheckPageSize(pageSize); err != nil {
		return fault(stepHeader, err)
	}
	ds, err := size(img.dataDev)
	if err != nil {
		return fault(stepImageRead, err)
	}
	hs, err := size(img.hashDev)
	if err != nil {
		return fault(stepHeaderRead, err)
	}
	return fault(stepSlotSize, img.target.CheckFits(ds, hs))
}
