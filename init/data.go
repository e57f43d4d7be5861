// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/devspec"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/unlock"
)

// dataState is the data partition once found, unlocked and mounted; it is
// set up once per boot, before a slot is chosen, and shared by the slot
// attempts.
type dataState struct {
	dev, fstype string
	root        string // where it is mounted: datapart.DefaultRoot
	stack       *mounts.Stack
	// mapped is the dm-crypt device the partition was unlocked into
	// (dataMapping), "" when it is not encrypted: removed when the
	// partition is given up (undoData).
	mapped string
}

// dataMapping is the dm-crypt device of an encrypted data partition.
const dataMapping = "keel-data"

// DefaultLUKSTimeout bounds the passphrase prompt when rd.luks.timeout= is
// 0 (or not given) and nobody can be assumed at the console: a locked
// initramfs, or an emergency policy other than the shell.
const DefaultLUKSTimeout = 2 * time.Minute

// luksTimeout is how long the passphrase prompt waits: rd.luks.timeout=
// when set; else forever when a shell that waits forever would be the
// emergency anyway (the shell waits for someone too), DefaultLUKSTimeout
// otherwise: a shell with rd.emergency.timeout= says nobody may come.
func luksTimeout(cfg kargs.Config, locked bool) time.Duration {
	switch {
	case cfg.LUKSTimeout > 0:
		return cfg.LUKSTimeout
	case locked || (cfg.Emergency != "" && cfg.Emergency != kargs.EmergencyShell) || cfg.EmergencyTimeout > 0:
		return DefaultLUKSTimeout
	}
	return 0
}

// lockedError is a data partition that exists and is encrypted but could
// not be unlocked: the boot stops (emergency policy) rather than boot any
// slot without the user's data.
type lockedError struct{ err error }

func (e *lockedError) Error() string { return e.err.Error() }
func (e *lockedError) Unwrap() error { return e.err }

// openData is the data phase: it finds, unlocks and mounts the data
// partition, before a slot is chosen (it does not depend on the slot).
// b.data stays nil when there is none or it cannot be used (then the boot
// is volatile, loudly). An error is returned only for what must stop the
// boot: an encrypted partition that could not be unlocked (a wrong key, no
// usable key slot, the prompt timed out, the key-derivation budget spent).
func (b *boot) openData() error {
	if b.stopDataPrefetch != nil {
		defer b.stopDataPrefetch()
	}
	dev, err := b.findData()
	if err != nil || dev == "" {
		return err
	}
	d, err := b.mountData(dev)
	var locked *lockedError
	if errors.As(err, &locked) {
		return err
	}
	if err != nil {
		b.volatile(dev, err)
		return nil
	}
	b.data = d
	return nil
}

// prefetchData loads the data partition's own file-system module in the
// background as soon as the partition appears — data=, else the default
// label on whichever disk shows it first (docs/boot-sequence.md,
// "Modules"): btrfs with raid6_pq and xor, whose boot-time benchmarks are
// slow under emulation, takes longer to load than the storage drivers
// take to find every disk, which it then overlaps instead of following;
// the data phase waits for it through need. When the configuration asks
// for a data partition, the first data file system of the plan started
// loading already in early-mounts (startFSPrefetch). A guess that was
// wrong, or a partition that the data phase does not use (on another
// disk), costs a module load in the background, nothing more. The data
// phase ends the wait for the partition (stopDataPrefetch).
func (b *boot) prefetchData() {
	s, ok := dataSpec(b.cfg.Data)
	if !ok {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	b.stopDataPrefetch = cancel
	// The reads (partition tables of every disk until the label is found,
	// then the partition's superblock) run in a goroutine the boot does not
	// wait for: a disk whose reads never end must not hold the report's
	// wait for the background loads (waitBackground), only this prefetch,
	// which ends with the data phase (stopDataPrefetch) or rd.timeout.
	found := make(chan []bakedconf.Module, 1)
	b.goSafe("the data partition's probe", func() {
		dev, err := b.dev.WaitFor(ctx, s)
		if err != nil {
			return
		}
		fs, err := datapart.Probe(dev)
		if err != nil {
			return // the data phase probes again and reports it
		}
		mods := dataModules(b.baked.Modules, fs.Type)
		b.log.Debugf("data partition %s holds %s: loading %v in the background", dev, fs.Type, names(mods))
		found <- mods
	})
	b.inBackground("the data partition's module prefetch", func() {
		select {
		case mods := <-found:
			b.loadInBackground(mods)
		case <-ctx.Done():
		}
	})
}

// dataModules is what a data partition holding fstype needs from the plan:
// the file system's module, or for a LUKS container dm-crypt and the first
// data file system the plan has (btrfs, then ext4: what is inside is known
// only once it is unlocked).
func dataModules(plan []bakedconf.Module, fstype string) []bakedconf.Module {
	if fstype != datapart.LUKS {
		return kmod.Closure(plan, fstype)
	}
	return kmod.Closure(plan, append(dmCrypt, firstDataFS(plan))...)
}

// dmCrypt is what opening a LUKS volume needs loaded: dm-crypt, and the
// cipher modes it allocates by name when the table is loaded (without xts
// and ecb: "Error allocating crypto tfm (-ENOENT)"), which are no
// dependency of dm_crypt and load with the rest of the plan, possibly not
// yet by then. Names the plan lacks (built in) are skipped.
var dmCrypt = []string{"dm_crypt", "xts", "ecb", "cbc"}

// firstDataFS is the first data file system (btrfs, then ext4) the plan
// has a module for; "" for none.
func firstDataFS(plan []bakedconf.Module) string {
	for _, t := range []string{datapart.Btrfs, datapart.Ext4} {
		if len(kmod.Closure(plan, t)) > 0 {
			return t
		}
	}
	return ""
}

// dataPlan says which data partition to look for: spec ("" for none, with
// data=none), and whether it is required — a DEVSPEC given, or the default
// label of a partition an earlier boot used — so that not finding it is a
// loud volatile boot rather than a system without a data partition.
func dataPlan(data string, seenBefore bool) (spec string, required bool) {
	switch data {
	case kargs.DataNone:
		return "", false
	case "":
		return "PARTLABEL=" + devices.LabelData, seenBefore
	}
	return data, true
}

// dataSpec is the data partition data= asks for (the default label when
// it is empty); ok is false for data=none or a data= that does not parse,
// which the data phase refuses.
func dataSpec(data string) (devspec.Spec, bool) {
	spec, _ := dataPlan(data, false)
	s, err := devspec.Parse(spec)
	return s, spec != "" && err == nil
}

// findData resolves the data partition (see dataPlan). "" means none. A
// DEVSPEC is waited for up to rd.timeout wherever it is; the default label
// only on the system disk, which is waited for (its partition table then
// says at once whether it has one). A required partition that is not found
// is a loud volatile boot.
func (b *boot) findData() (string, error) {
	spec, required := dataPlan(b.cfg.Data, b.dataSeenBefore())
	switch {
	case spec == "":
		b.log.Infof("data=none: fully volatile system")
		return "", nil
	case b.cfg.Data != "":
		if _, found := b.lookup(spec); !found {
			b.log.Console("keel: waiting up to %v for the data partition %s (data=)", time.Until(b.devDeadline).Round(time.Second), spec)
		}
		dev, err := b.waitFor("data", spec)
		if err != nil {
			b.volatile(spec, err)
			return "", nil
		}
		return dev, nil
	}
	dev, err := b.waitForDefault("data", devices.LabelData)
	switch {
	case err == nil:
		return dev, nil
	case required:
		b.volatile(spec, fmt.Errorf("an earlier boot used a data partition, none is here now: %w", err))
	default:
		b.log.Infof("no data partition (%s): / is volatile, /var and /home come from the image", spec)
	}
	return "", nil
}

// lookup resolves spec to a device known now, without waiting: an expired
// context makes WaitFor a lookup.
func (b *boot) lookup(spec string) (string, bool) {
	s, err := devspec.Parse(spec)
	if err != nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	dev, err := b.dev.WaitFor(ctx, s)
	return dev, err == nil
}

// mountData unlocks dev when it is LUKS and mounts the filesystem inside.
// Every error of the unlocking is a *lockedError.
func (b *boot) mountData(dev string) (*dataState, error) {
	if err := b.unfinishedMounts(); err != nil {
		return nil, err
	}
	fs, err := datapart.Probe(dev)
	if err != nil {
		return nil, err
	}
	if err := b.checkDataEncryption(fs.Type, fs.Type == datapart.LUKS); err != nil {
		return nil, err
	}
	d := &dataState{dev: dev, root: datapart.DefaultRoot, stack: &mounts.Stack{Sys: b.stack.Sys}}
	b.rep.Data = &report.Data{Device: dev}
	if fs.Type == datapart.LUKS {
		b.need(dmCrypt...)
		mapped, err := b.unlockData(dev)
		if err != nil {
			return nil, &lockedError{err}
		}
		d.mapped = dataMapping
		b.rep.Data.Encrypted, b.rep.Data.Device = true, mapped
		if fs, err = datapart.ProbeUnlocked(mapped); err != nil {
			b.closeMapping(d)
			return nil, err
		}
		dev = mapped
	}
	d.fstype = fs.Type
	b.rep.Data.FSType = fs.Type
	// The count's write and flush come before the wait for the file
	// system's module, which is usually still loading (btrfs's chain is
	// the longest of the plan): the two overlap instead of adding up. A
	// module load that never returns is then counted with the mount,
	// which it is part of.
	b.beginDataMount()
	b.need(fs.Type)
	if err := d.stack.Do(datapart.Mount(dev, fs.Type, d.root)); err != nil {
		b.closeMapping(d)
		return nil, err
	}
	b.log.Infof("data partition %s (%s) mounted at %s", dev, fs.Type, d.root)
	return d, nil
}

// countedDataMount is the boot state that counts this boot's mount of the
// data partition (docs/boot-sequence.md, "A mount that never returns"):
// nil when the mount cannot be counted — single and plain roots keep no
// boot state, slot= leaves it alone, and a count in memory is forgotten.
func (b *boot) countedDataMount() *bootState {
	if b.cfg.Root != "" || b.cfg.Slot != "" || b.bs == nil || b.bs.inMemory {
		return nil
	}
	return b.bs
}

// unfinishedMounts fails when the last boots began mounting the data
// partition and never finished with it (bootstate.DataMountLimit): a mount,
// or a step of its preparation for the new root (the /var seed, the /etc
// merge, the upper, the binds), that hangs or panics the kernel, the same
// in every boot, would otherwise take every boot with it. This boot leaves
// the partition alone (volatile, loudly), before any passphrase is asked
// for, and its choice of a slot sets the count back to 0, so that the next
// boot mounts it again.
func (b *boot) unfinishedMounts() error {
	bs := b.countedDataMount()
	if bs == nil || !bs.state.DataMountUnfinished() {
		return nil
	}
	return fmt.Errorf("the last %d boots began mounting it and never finished with it (its mount or its preparation for the new root hung or panicked the kernel, or power cuts): it is left alone in this boot so that the system comes up, and mounted again at the next boot", bs.state.UnfinishedDataMounts)
}

// beginDataMount makes this boot's mount of the data partition durable in
// the boot state before it begins; bootstate.Select ends it once the
// slot's attempts, which prepare the data partition for the new root,
// returned. A state that cannot be saved is a warning: the mount goes on,
// uncounted.
func (b *boot) beginDataMount() {
	bs := b.countedDataMount()
	if bs == nil {
		return
	}
	st := bs.state
	st.BeginDataMount()
	if err := bootstate.Save(bs.store, &st); err != nil {
		b.log.Warnf("boot state: the mount of the data partition is not counted (%v): a mount that never returns would be tried again at every boot", err)
		return
	}
	bs.state = st
}

// unlockData opens the LUKS volume with the baked key file, else with a
// passphrase typed on the console (a few tries, within rd.luks.timeout).
// All of it shares one key-derivation budget.
func (b *boot) unlockData(dev string) (string, error) {
	const name = dataMapping
	// Passphrase, volume key and Argon2 state stay in RAM (docs/security.md).
	release, lerr := unlock.LockMemory()
	if lerr != nil {
		b.log.Warnf("%v", lerr)
	}
	defer func() {
		if err := release(); err != nil {
			b.log.Warnf("%v", err)
		}
	}()
	budget := unlock.NewKDFBudget(unlock.DefaultKDFBudget)
	budget.SetProgress(b.progress) // each key slot's derivation takes seconds
	o := unlock.Opener{Role: "data", Budget: budget, NoDiscards: b.baked.Locked}
	if kf := b.baked.LUKSKeyfile; kf != "" {
		secret, err := os.ReadFile(kf)
		if err == nil {
			path, err := o.Open(dev, name, unlock.Key{Secret: secret, Kind: unlock.KeyFile})
			clear(secret)
			if err == nil || !errors.Is(err, unlock.ErrNoKeySlot) {
				return path, err
			}
			b.log.Warnf("%v", err)
		} else {
			b.log.Warnf("LUKS key file: %v", err)
		}
	}
	timeout := luksTimeout(b.cfg, b.baked.Locked)
	if timeout > 0 {
		b.log.Console("keel: the data partition is encrypted: type its passphrase within %v (rd.luks.timeout=%d)", timeout, int(timeout/time.Second))
	}
	var path string
	console := struct {
		io.Reader
		io.Writer
	}{os.Stdin, consoleWriter{b.log}}
	p := unlock.Prompter{Console: console, Fd: 0, Tries: unlock.DefaultTries, Timeout: timeout}
	b.humanAtConsole() // nobody is reset while typing; a hung unlock still is
	err := p.Ask(unlock.Describe("data", dev), func(pass []byte) error {
		b.progress()
		defer b.humanAtConsole()
		path2, err := o.Open(dev, name, unlock.Key{Secret: pass, Kind: unlock.Passphrase})
		path = path2
		return err
	})
	b.progress()
	if errors.Is(err, unlock.ErrTimeout) {
		err = fmt.Errorf("%w (rd.luks.timeout=%d)", err, int(timeout/time.Second))
	}
	return path, err
}

// volatile reports, loudly, that the data partition is not used, and
// undoes every mount of it: the data filesystem and, through the caller,
// anything of it in the new root (see assemble).
func (b *boot) volatile(dev string, err error) {
	b.alarm(datapart.VolatileWarning(dev, err))
	if b.rep.Data == nil {
		b.rep.Data = &report.Data{Device: dev}
	}
	r := b.rep.Data
	r.Volatile = true
	r.Upper, r.FreshUpper, r.Binds, r.Pruned, r.Created, r.Seeded = "", false, nil, nil, nil, false
	switch {
	case b.data != nil && b.inAttempt:
		b.dataAside = b.data // for the other slot's attempt, if this one fails
	case b.data != nil:
		b.undoData(b.data)
	}
	b.data = nil
}

func (b *boot) undoData(d *dataState) {
	for _, e := range d.stack.Undo() {
		b.log.Warnf("undo data mounts: %v", e)
	}
	b.closeMapping(d)
}

// closeMapping removes the dm-crypt device of a data partition given up:
// a volatile boot must not leave the decrypted partition open for its
// whole uptime, outside the shutdown's undo record (found by a hunting
// helper). Still mounted (an undo that failed), the removal fails, named.
func (b *boot) closeMapping(d *dataState) {
	if d.mapped == "" {
		return
	}
	if err := closeDM(d.mapped); err != nil {
		b.log.Warnf("data partition: %v (left open)", err)
		return
	}
	b.log.Infof("data partition: dm-crypt device %s removed", d.mapped)
	d.mapped = ""
}

// closeDM removes a dm-crypt device (a variable for tests).
var closeDM = func(name string) error { return unlock.Opener{Role: "data"}.Close(name) }

// reclaimData gives the data partition a failed slot attempt went volatile
// without back to slot's attempt: what made that attempt give it up (a /var
// bind over an image it could not read, an init its upper hid) may be that
// slot's alone.
func (b *boot) reclaimData(slot bootstate.Slot) {
	if b.dataAside == nil {
		return
	}
	b.data, b.dataAside = b.dataAside, nil
	b.rep.Data.Volatile = false
	b.warnLoud("data partition %s: used again for slot %s (the failed attempt before went volatile without it)", b.data.dev, slot)
}

// settleData ends the slot attempts: the data partition the chosen
// attempt went volatile without (or the last failed one) is unmounted.
func (b *boot) settleData() {
	if b.dataAside != nil {
		b.undoData(b.dataAside)
		b.dataAside = nil
	}
}

// prepareData readies the data partition for this image: layout, /var seed,
// the image's upper, pruning. It returns the upper dir for
// overlay=persistent ("" when the boot is volatile).
func (b *boot) prepareData(layout mounts.Layout, imageID string) string {
	d := b.data
	if d == nil {
		return ""
	}
	slot := b.rep.Slot
	if b.rep.Mode != "slot" {
		slot = b.rep.Mode
	}
	if imageID == "" {
		slot = "" // a plain root has no image: no upper, nothing pruned
	}
	prune, why := mayPrune(b.cfg, b.rep.Mode, slot, b.devices())
	if prune && b.bootStateUnavailable() {
		prune, why = false, "the bootstate partition cannot be used in this boot: the image last marked good, whose upper is the /etc merge's source, is unknown"
	}
	if lgSlot, lgID, ok := b.lastGood(); prune && ok && lgSlot == slot && lgID != imageID {
		// The last good image was in this slot and was replaced: its upper
		// is the /etc merge's source, so it stays until another image is
		// marked good.
		prune, why = false, "the upper of "+lgID+", the last image marked good, is the /etc merge's source"
	}
	if _, _, known := b.lastGood(); prune && !known && b.rep.Mode == "slot" && !b.loadBootState().inMemory {
		// No last good image recorded: the data partition's copy of the
		// boot state may name one in this slot, which recoverLastGood
		// then merges from (the slot rewritten, the state blanked).
		if cs, ci, ok := copyLastGood(d.root); ok && cs == slot && ci != imageID {
			prune, why = false, "the upper of "+ci+", the last good image the data partition's copy of the boot state names, is the /etc merge's source"
		}
	}
	if slot != "" && !prune {
		b.log.Infof("data: uppers of slot %s kept: %s", slot, why)
	}
	var res datapart.Result
	var err error
	b.whileWritingBack(func() {
		res, err = datapart.Prepare(datapart.Plan{
			Root: d.root, FSType: d.fstype, ImageVar: filepath.Join(layout.Lower, "var"),
			Slot: slot, ImageID: imageID, NoPrune: !prune, Progress: b.progress,
		})
	})
	if err != nil {
		b.volatile(d.dev, err)
		return ""
	}
	for _, w := range res.Warnings {
		b.log.Warnf("data: %s", w)
		b.rep.Warn("data: %s", w)
	}
	for _, p := range res.Pruned {
		b.log.Infof("data: removed the upper %s (its image is no longer in slot %s)", p, slot)
	}
	r := b.rep.Data
	r.Created, r.Seeded, r.Pruned, r.Upper, r.FreshUpper = res.Created, res.Seeded, res.Pruned, res.UpperDir, res.FreshUpper
	return res.UpperDir
}

// devices lists the block devices seen so far ([] before discovery).
func (b *boot) devices() []devices.Device {
	if b.dev == nil {
		return nil
	}
	return b.dev.Devices()
}

// mayPrune says whether the image booted as slot is provably the one in
// that slot, so that the uppers of other images there may be removed: only
// a slot boot from the slot's default partitions (no root-X=/verity-X=
// override), each label matching exactly one partition among devs. It
// says why not otherwise.
func mayPrune(cfg kargs.Config, mode, slot string, devs []devices.Device) (bool, string) {
	if mode != "slot" {
		return false, "not a slot boot (the image's device comes from the command line)"
	}
	if cfg.SlotRoot(slot) != "" || cfg.SlotVerity(slot) != "" {
		return false, fmt.Sprintf("the devices of slot %s are overridden on the command line", slot)
	}
	for _, label := range []string{"root-" + slot, "verity-" + slot} {
		n := 0
		for _, d := range devs {
			if d.Type == "partition" && d.PartName == label {
				n++
			}
		}
		if n != 1 {
			return false, fmt.Sprintf("%d partitions are labelled %s, expected exactly 1", n, label)
		}
	}
	return true, ""
}

// bindData binds /var and /home from the data partition into the new root.
// On failure the caller undoes them with the rest of the root (see
// assemble) before booting volatile.
func (b *boot) bindData(layout mounts.Layout) error {
	if b.data == nil {
		return nil
	}
	var binds []string
	for _, m := range datapart.Binds(b.data.root, layout.NewRoot) {
		// Resolved once the binds before it are in place: the image's
		// /home -> var/home goes through the @var just bound.
		at, err := mounts.ResolveMountPoint(layout.NewRoot, layout.Lower, m.Target[len(layout.NewRoot):])
		if err != nil {
			return err
		}
		m.Target = filepath.Join(layout.NewRoot, at)
		if err := b.stack.Do(m); err != nil {
			return err
		}
		binds = append(binds, at)
	}
	b.rep.Data.Binds = binds
	return nil
}
