// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/etcmerge"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// baseMount is where the last-good image is mounted, read-only, while its
// /etc serves as the base of the merge.
const baseMount = "/run/keel/base"

// mergeEtc builds the fresh persistent upper of this image with the /etc
// changes of the image last marked good carried over (docs/data.md). It
// runs once per image: only when the upper is fresh, and the upper is
// created with the merge in one atomic step (datapart.NewUpper). A failed
// merge never fails the boot: it says so loudly, makes no upper and
// reports failed, and the boot goes on over a tmpfs upper with the new
// image's own /etc (the data partition's /var and /home still bound), so
// that the next boot merges again while the last good image's upper, which
// holds the machine's configuration, stays (slotctl mark-good does not
// move the last good image off it). The old image's mount and mapping are
// undone while the boot goes on; the returned wait, to be called before
// the new root is switched into, waits for that.
func (b *boot) mergeEtc(layout mounts.Layout, mode, upper string) (wait func(), failed bool) {
	wait = func() {}
	if mode != mounts.OverlayPersistent || upper == "" || b.rep.Data == nil || !b.rep.Data.FreshUpper {
		return wait, false
	}
	root := datapart.DefaultRoot
	if b.data != nil {
		root = b.data.root
	}
	slot, id, ok := b.lastGood()
	if !ok && b.rep.Mode == "slot" && b.bootStateUnavailable() && datapart.OtherUppers(root, upper) {
		// The boot state could not be read: the last good image, whose
		// upper holds the machine's configuration, is unknown, not
		// absent. An empty upper made now would never be merged.
		b.alarm("the bootstate partition cannot be used in this boot, so the image last marked good, whose upper the /etc merge reads, is unknown: this boot's upper layer is tmpfs (/var and /home bound), and the first boot with the boot state merges /etc")
		return wait, true
	}
	if !ok && b.rep.Mode == "slot" && !b.loadBootState().inMemory {
		// The boot state, durable, names no last good image, yet other
		// images ran here: their upper holds the machine's configuration.
		// (Without a bootstate partition there is no last good image to
		// find: uppers are made and pruned as they always were. A trial's
		// upper set aside was never a good image's.)
		if ups := datapart.ImageUppers(root, upper); len(ups) > 0 {
			slot, id, ok = b.recoverLastGood(root, ups, b.loadBootState().state, b.slotImageID)
		}
	}
	if !ok || slot == b.rep.Slot && id == b.rep.ImageID {
		// Nothing to merge from; on btrfs the upper is still made here, a
		// subvolume, so that the next image's merge can start from a
		// snapshot of it (the mount would make a plain directory).
		if err := (datapart.NewUpper{Dir: upper, NoFlush: true}).Create(); err != nil {
			b.log.Warnf("making the upper %s: %v (the mount makes it)", upper, err)
		}
		return wait, false
	}
	start := time.Now()
	m := &report.EtcMerge{FromSlot: slot, FromImage: id}
	old, err := datapart.UpperDir(root, slot, id)
	if err == nil {
		// The merge reads old's upper/etc by path: never through a
		// symlink the running system planted.
		err = datapart.CheckUpperPath(root, old)
	}
	if err == nil {
		base, closeBase := b.openBase(m)
		opened := time.Now()
		// An old upper that is a btrfs subvolume is snapshotted and the
		// snapshot's etc/ edited: only what differs from the old upper is
		// written (docs/data.md). Otherwise every carried file is copied.
		sub, serr := datapart.IsSubvolume(old)
		if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
			b.log.Warnf("/etc merge: %v: copying instead of a snapshot", serr)
		}
		// CheckUpperPath made sure upper/ and upper/etc are directories
		// or absent: a symlink would not be in the snapshot as the merge
		// reads it.
		m.InPlace = sub
		step := func(what string) error { // where the time goes, in the log
			b.log.Infof("/etc merge: %s done after %v", what, time.Since(opened))
			return nil
		}
		merge := func(base string) error {
			from := ""
			if m.InPlace {
				from = old
			}
			return datapart.NewUpper{Dir: upper, From: from, Step: step, Fill: func(tmp string) error {
				r, err := etcmerge.Merge(etcmerge.Options{
					Local: filepath.Join(old, "upper", "etc"), Base: base,
					New: filepath.Join(layout.Lower, "etc"), Out: filepath.Join(tmp, "upper", "etc"),
					InPlace: m.InPlace,
				})
				fillMerge(m, r, start)
				b.log.Infof("/etc merge: base opened in %v, merged in %v (in place in a snapshot: %v)", opened.Sub(start), time.Since(opened), m.InPlace)
				if err != nil {
					return err
				}
				return writeMergeRecord(tmp, m)
			}}.Create()
		}
		b.whileWritingBack(func() {
			err = inPlaceOrCopy(&m.InPlace, func() error {
				over := base
				if m.NoBase != "" {
					over = "" // found unreadable by the first attempt
				}
				return mergeFrom(merge, over, baseMount, func(why string) {
					b.log.Warnf("/etc merge: %s: merging without it", why)
					m.Base, m.NoBase = "", why // before the merge record is written
				})
			}, func(why string) bool {
				if _, err := os.Lstat(upper); err == nil {
					return false // made, and only its last flush failed: that error stands
				}
				b.warnLoud("/etc merge in place in a snapshot of %s failed (%s): merging again by copying", old, why)
				return true
			})
		})
		b.log.Infof("/etc merge: new upper %s flushed and in place after %v", upper, time.Since(opened))
		wait = b.undoLater(closeBase)
	}
	m.Ms = float64(time.Since(start).Microseconds()) / 1000
	b.rep.EtcMerge = m
	if err != nil {
		b.etcMergeFailed(m, err)
		return wait, true
	}
	b.log.Console("keel: %s", m.Summary())
	for _, c := range m.Conflicts {
		b.log.Warnf("/etc merge conflict: %s: %s", c.Path, c.Reason)
		b.log.Console("keel: /etc merge conflict: %s: %s", c.Path, c.Reason)
	}
	for _, s := range m.Skipped {
		b.log.Infof("/etc merge skipped %s", s)
	}
	return wait, false
}

// mergeFrom runs merge over base, the old image's /etc mounted under
// mnt; when the old image cannot be read where the merge needs it (an I/O
// error, a block that fails verification), it tells without why, then
// merges again without a base, every local change carried (docs/data.md).
func mergeFrom(merge func(base string) error, base, mnt string, without func(why string)) error {
	err := merge(base)
	if base == "" || !readsUnder(err, mnt) {
		return err
	}
	without(fmt.Sprintf("the old image could not be read (%v)", err))
	return merge("")
}

// inPlaceOrCopy runs merge in place when *inPlace, and when that fails
// says why (copying), then merges again by copying (*inPlace false): an
// edit the snapshot refuses — an immutable file the merge must drop or
// change (chattr +i /etc/resolv.conf, copied up with its flag), a snapshot
// the file system cannot finish — must not fail every update's merge when
// a copy of what is carried would succeed (docs/data.md). The copy does not
// carry inode flags. copying may refuse the retry (false): the failed
// attempt's error then stands.
func inPlaceOrCopy(inPlace *bool, merge func() error, copying func(why string) bool) error {
	err := merge()
	if err == nil || !*inPlace || !copying(err.Error()) {
		return err
	}
	*inPlace = false
	return merge()
}

// readsUnder reports whether err is a failed read of a file under dir.
func readsUnder(err error, dir string) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && (pe.Path == dir || strings.HasPrefix(pe.Path, dir+"/"))
}

// bootStateUnavailable reports whether this boot counts in memory because
// the machine's bootstate partition could not be used in this boot (late,
// unreadable): the last good image is unknown, not absent. A partition
// that is not there at all, or holds something else, is no such case: that
// machine has no last good image to wait for.
func (b *boot) bootStateUnavailable() bool {
	return b.loadBootState().unavailable
}

// setAsideTrials sets the other slot's uppers aside (datapart.SetAsideUppers)
// when this boot is of the image last marked good, with its persistent
// upper, and the other slot is not good (trialToSetAside). Done before this
// boot can change /etc, so that a trial whose upper was merged from the
// /etc of this image as it was then merges again at its next boot (a
// retried update, same image id: it used to boot the stale /etc, and once
// marked good the next update pruned the upper holding this boot's
// changes). A failure is loud, and the boot goes on.
func (b *boot) setAsideTrials(imageID string) {
	if b.rep.Mode != "slot" || b.data == nil || b.rep.Data == nil {
		return
	}
	st := b.loadBootState().state
	other, ok := trialToSetAside(st, b.rep.Slot, imageID)
	if !ok {
		return
	}
	moved, err := datapart.SetAsideUppers(b.data.root, string(other), mergedFrom(st.LastGood))
	for _, p := range moved {
		b.log.Console("keel: set aside the upper %s: slot %s is not marked good, so its next boot merges /etc from this image again", p, other)
	}
	b.rep.Data.SetAside = append(b.rep.Data.SetAside, moved...)
	if err != nil {
		// What this boot changes in /etc would be missing from that
		// trial's /etc, then lost once it is marked good and this upper
		// pruned: this boot's upper is not written (freezeUpper).
		b.freezeWhy = fmt.Sprintf("%v: slot %s's upper, merged from an older state of this image's /etc, could not be set aside", err, other)
	}
}

// trialToSetAside decides, from the boot state, whether a boot of imageID
// from slot, with its persistent upper, sets the other slot's uppers aside,
// and names that slot: only when the booted image is the last good one
// (the /etc merge's source) and the other slot is not good (a trial, or a
// retired slot). A good other slot's upper is its own /etc lineage, a
// rollback target, and is never touched.
func trialToSetAside(st bootstate.State, slot, imageID string) (bootstate.Slot, bool) {
	lg := st.LastGood
	if !st.Initialised || imageID == "" || lg.ImageID != imageID || string(lg.Slot) != slot {
		return "", false
	}
	other := lg.Slot.Other()
	return other, !st.Slot(other).Good
}

// mergedFrom picks, for datapart.SetAsideUppers, the uppers whose /etc
// merge read the last good image lg's upper: copies of its /etc as it was
// then, stale once this boot of it changes /etc. An upper no merge made (a
// slot's first image) or one merged from another image (an image that was
// good before lg, and is now tried again: a rollback, slotctl set-next) is
// that image's own /etc and stays where its next boot finds it, as it was
// (docs/data.md). A record that cannot be read or parsed sets the upper
// aside, as before records were read: nothing is lost, it is moved.
func mergedFrom(lg bootstate.LastGood) func(record []byte, err error) bool {
	return func(record []byte, err error) bool {
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		if err != nil {
			return true
		}
		m, err := report.ParseEtcMerge(record)
		if err != nil {
			return true
		}
		return m.FromSlot == string(lg.Slot) && m.FromImage == lg.ImageID
	}
}

// undoLater runs undo in the background (unmounting the base and removing
// its mapping take ~0.1 s under emulation, which the overlay and the binds
// mounted meanwhile hide) and returns what waits for it.
func (b *boot) undoLater(undo func()) func() {
	done := make(chan struct{})
	b.goSafeThen("undoing the /etc merge's base", undo, func() { close(done) })
	return func() { <-done }
}

// recoverLastGood finds, among ups, the upper holding the machine's /etc
// when the boot state, read and sound, names no last good image but the
// data partition (root) holds uppers of other images: a version 1 record
// (keel before the last good image was kept), a bootstate partition
// flashed or found blank while the data partition was kept. It is the last
// good image of the copy of the boot state slotctl keeps on the data
// partition when its upper is among ups (prepareData keeps it from
// pruning); else the upper of the image the other slot holds now (current:
// the image id in a slot's header), where an update, written to the slot
// not running, leaves the configuration, unless state retired that slot (a
// failed trial's upper holds no good image's /etc). The booted slot's
// other uppers are of the images this one replaced, and pruned as they
// always were. ok is false when neither is there: the upper is made
// unmerged, as it always was.
func (b *boot) recoverLastGood(root string, ups []datapart.ImageUpper, state bootstate.State, current func(slot string) string) (slot, id string, ok bool) {
	from := ""
	if cs, ci, cok := copyLastGood(root); cok {
		for _, u := range ups {
			if u.Slot == cs && u.ImageID == ci {
				slot, id, from = u.Slot, u.ImageID, "the copy of the boot state on the data partition"
			}
		}
	}
	held := map[string]string{} // slot → the image id in its header, read once
	for _, u := range ups {
		if from != "" || u.Slot == b.rep.Slot {
			continue
		}
		if st := state.Slot(bootstate.Slot(u.Slot)); st.Priority == 0 && !st.Good {
			continue // retired: a failed trial, or marked bad
		}
		h, seen := held[u.Slot]
		if !seen {
			h = current(u.Slot)
			held[u.Slot] = h
		}
		if h == u.ImageID {
			slot, id, from = u.Slot, u.ImageID, "the image slot "+u.Slot+" holds"
		}
	}
	if from == "" {
		b.log.Infof("the boot state names no image last marked good, and no upper on the data partition is of the image another slot holds: this image's upper starts unmerged")
		return "", "", false
	}
	b.warnLoud("the boot state names no image last marked good: the /etc merge reads the upper of %s in slot %s (%s)", id, slot, from)
	return slot, id, true
}

// copyLastGood is the last good image the copy of the boot state on the
// data partition at root names, if there is one.
func copyLastGood(root string) (slot, id string, ok bool) {
	c, err := readCopy(filepath.Join(root, bootstate.CopyName))
	if err != nil || c.LastGood.Slot == "" {
		return "", "", false
	}
	return string(c.LastGood.Slot), c.LastGood.ImageID, true
}

// slotImageID is the image id in the header of slot's verity partition,
// "" when it cannot be read (or there are no devices to read it from).
func (b *boot) slotImageID(slot string) string {
	id, _ := b.slotHeaderID(slot)
	return id
}

// slotHeaderID is slotImageID with why the header could not be read.
func (b *boot) slotHeaderID(slot string) (string, error) {
	x, err := slots.ParseSlot(slot)
	if err != nil {
		return "", err
	}
	if b.dev == nil {
		return "", errors.New("no device discovery in this boot")
	}
	img, err := b.slotImage(x)
	if err != nil {
		return "", err
	}
	return img.imageID, nil
}

func fillMerge(m *report.EtcMerge, r etcmerge.Result, start time.Time) {
	m.Carried, m.Deleted, m.Same, m.Skipped = r.Carried, r.Deleted, r.Same, r.Skipped
	m.Conflicts = m.Conflicts[:0]
	for _, c := range r.Conflicts {
		m.Conflicts = append(m.Conflicts, report.EtcConflict{Path: c.Path, Reason: c.Reason})
	}
	m.Ms = float64(time.Since(start).Microseconds()) / 1000
}

// writeMergeRecord keeps the merge's record next to the upper, for slotctl.
func writeMergeRecord(dir string, m *report.EtcMerge) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, datapart.EtcMergeFile), append(b, '\n'), 0o644)
}

// etcMergeFailed reports a failed merge loudly. No upper is made: the
// next boot finds it fresh and merges again.
func (b *boot) etcMergeFailed(m *report.EtcMerge, err error) {
	m.Error = err.Error()
	b.alarm(m.Summary() + "; this boot's upper layer is tmpfs, and the merge is tried again at the next boot")
}

// openBase mounts the last-good image read-only through dm-verity, its
// header authenticated as at boot, when its slot still holds that image.
// It returns its /etc ("" with the reason in m.NoBase otherwise) and what
// undoes the mount and the mapping.
func (b *boot) openBase(m *report.EtcMerge) (string, func()) {
	nothing := func() {}
	why := b.baseProblem(m.FromSlot)
	if why != "" {
		m.NoBase = why
		return "", nothing
	}
	img, err := b.slotImage(slots.Slot(m.FromSlot))
	switch {
	case err != nil:
		m.NoBase = err.Error()
	case img.imageID != m.FromImage:
		m.NoBase = fmt.Sprintf("slot %s now holds image %s", m.FromSlot, img.imageID)
	case img.hashFrom != "header":
		m.NoBase = "the root hash came from " + img.hashFrom + ", which names the booted image"
	}
	if m.NoBase != "" {
		return "", nothing
	}
	img.name = "keel-base-" + m.FromSlot
	img.target.Name = img.name
	// A corrupt block of the old image is an I/O error that the merge
	// answers by merging without a base (mergeFrom), not a restart: the
	// booted image is not the one at fault, and a restart would spend its
	// tries at every boot for a block it never reads.
	img.target.Options = kargs.WithoutMode(img.target.Options)
	b.need("dm_verity")
	dev, err := verity.Open(img.target)
	if err != nil {
		m.NoBase = err.Error()
		return "", nothing
	}
	stack := mounts.NewStack()
	undo := func() {
		for _, e := range stack.Undo() {
			b.log.Warnf("/etc merge base: %v", e)
		}
		if err := verity.Close(img.name); err != nil {
			b.log.Warnf("/etc merge base: %v", err)
		}
	}
	mnt := mounts.Mount{Source: dev, Target: baseMount, FSType: "squashfs", Flags: unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID}
	if err := stack.Do(mnt); err != nil {
		m.NoBase = err.Error()
		undo()
		return "", nothing
	}
	m.Base = "slot " + m.FromSlot
	return filepath.Join(baseMount, "etc"), undo
}

// baseProblem says why the last-good slot cannot be read at all.
func (b *boot) baseProblem(slot string) string {
	switch {
	case b.rep.Mode != "slot":
		return "not booted from a slot"
	case slot == b.rep.Slot:
		return fmt.Sprintf("slot %s now holds image %s", slot, b.rep.ImageID)
	case b.cfg.VerityOff:
		return "verity=off: the old image cannot be verified"
	}
	if _, err := slots.ParseSlot(slot); err != nil {
		return err.Error()
	}
	return ""
}
