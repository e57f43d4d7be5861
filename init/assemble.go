// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/mounts"
)

// assemble stacks the upper layer over the image mounted at layout.Lower,
// binds /var and /home from the data partition, and checks the init.
// overlay= decides the upper; by default it is persistent when a data
// partition is usable, else tmpfs.
//
// Everything of the data partition in the new root (a persistent upper,
// the binds) is mounted after mark; when any of it fails, all of it is
// undone before the boot goes volatile, so that a volatile boot never
// writes to the data partition.
func (b *boot) assemble(layout mounts.Layout, imageID string) error {
	start := time.Now()
	b.freezeWhy = "" // a slot tried before in this boot froze its own upper only
	upper := b.prepareData(layout, imageID)
	b.rep.AddPhase("data-image", start)
	mark := b.stack.Len()
	mode := b.cfg.Overlay
	switch {
	case mode == "" && upper != "":
		mode = mounts.OverlayPersistent
	case mode == "":
		mode = mounts.OverlayTmpfs
	case mode == mounts.OverlayPersistent && upper == "":
		b.log.Warnf("overlay=persistent but no usable data partition: the upper layer is tmpfs")
		b.rep.Warn("overlay=persistent but no usable data partition: the upper layer is tmpfs")
		mode = mounts.OverlayTmpfs
	}
	if mode == mounts.OverlayPersistent && upper != "" {
		b.setAsideTrials(imageID)
	}
	var err error
	wait, failed := b.mergeEtc(layout, mode, upper)
	defer wait() // the base is undone before switch_root
	if failed {
		// No upper was made, so the next boot merges again; this one runs
		// over tmpfs, the data partition's /var and /home still bound.
		mode, upper = mounts.OverlayTmpfs, ""
		b.rep.Data.Upper, b.rep.Data.FreshUpper = "", false
	}
	var ms []mounts.Mount
	frozen := mode == mounts.OverlayPersistent && upper != "" && b.freezeUpper()
	if frozen {
		ms = layout.FrozenUpperMounts(upper)
	} else if ms, err = layout.RootMounts(mode, upper); err != nil {
		return err
	}
	if mode != mounts.OverlayOff {
		b.need("overlay")
	}
	err = b.stack.DoAll(ms...)
	if err != nil && mode != mounts.OverlayPersistent {
		return fault(stepOverlay, err)
	}
	if err == nil && mode == mounts.OverlayPersistent && b.data != nil {
		// The upper can make /dev or /var a symlink, which a mount would
		// follow from the initramfs's root: the data partition's fault,
		// handled as a bind that fails.
		err = mounts.CheckMountPoints(layout.NewRoot, layout.Lower, append(slices.Clone(mounts.APIFilesystems), datapart.BindPoints...)...)
	}
	if err == nil {
		err = b.bindData(layout)
	}
	var apiAt map[string]string
	if err == nil {
		// Through the image's own links only, once the binds are in
		// place: an image's /run -> var/run goes through @var.
		apiAt, err = mounts.ResolveAPIFilesystems(layout.NewRoot, layout.Lower)
		if err != nil && b.data == nil {
			return fault(stepAPIMounts, err)
		}
	}
	if err != nil {
		for _, e := range b.stack.UndoTo(mark) {
			b.log.Warnf("undo the data partition's mounts in the new root: %v", e)
		}
		b.volatile(b.data.dev, err)
		return b.assemble(layout, imageID)
	}
	b.rep.Overlay = mode
	b.apiAt = apiAt
	if mode != mounts.OverlayPersistent && b.rep.Data != nil {
		// / is not on the data partition (overlay=tmpfs or off): boot.json
		// names no upper, so slotctl mark-good does not move the last good
		// image, whose upper holds the machine's /etc, to this one.
		b.rep.Data.Upper, b.rep.Data.FreshUpper = "", false
	}
	err = b.checkInit(layout.NewRoot)
	if err != nil && mode == mounts.OverlayPersistent && b.data != nil {
		// The image has the init but the root its upper makes does not
		// (a whiteout, a directory over it, an upper that cannot be read):
		// the data partition's fault, not the image's, which would retire
		// a slot that works. The boot goes volatile, over the image alone.
		if _, lerr := mounts.ResolveInit(layout.Lower, b.cfg.Init); lerr == nil {
			for _, e := range b.stack.UndoTo(mark) {
				b.log.Warnf("undo the data partition's mounts in the new root: %v", e)
			}
			b.volatile(b.data.dev, fmt.Errorf("the image has the init %s, but its persistent upper layer hides it: %w", b.cfg.Init, err))
			return b.assemble(layout, imageID)
		}
	}
	if err == nil && frozen {
		b.rep.Data.UpperReadOnly = true
		why := "the bootstate partition cannot be used in this boot, so keel cannot tell whether another slot's upper layer was merged from this one"
		if b.freezeWhy != "" {
			why = b.freezeWhy
		}
		b.alarm(fmt.Sprintf("%s: the upper layer %s is mounted read-only under a tmpfs upper, and what this boot changes in / (/etc) is not kept (/var and /home are)", why, upper))
	}
	return err
}

// freezeUpper says whether this boot's existing persistent upper must not
// be written: the boot state is unavailable in this boot (late,
// unreadable; bootStateUnavailable), so the trial of another slot whose
// /etc was merged from this upper cannot be set aside (setAsideTrials
// needs to know that slot is not good), and a change made here would be
// missing from that trial's /etc, then lost once it is marked good and
// this upper pruned. A fresh upper is mergeEtc's to decide.
//
// The same holds when the boot state says the other slot is on trial but
// its uppers could not be set aside (setAsideTrials: b.freezeWhy).
func (b *boot) freezeUpper() bool {
	return b.rep.Mode == "slot" && b.rep.Data != nil && !b.rep.Data.FreshUpper && (b.bootStateUnavailable() || b.freezeWhy != "")
}

func (b *boot) checkInit(newRoot string) error {
	init, err := mounts.ResolveInit(newRoot, b.cfg.Init)
	if err != nil {
		if b.cfg.Init != b.base.Init {
			return fault(stepInitArg, err)
		}
		return fault(stepInit, err)
	}
	b.newRoot, b.init = newRoot, b.cfg.Init
	b.log.Debugf("init %s resolves to %s", b.cfg.Init, init)
	return nil
}
