package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// singleImage is root=DEVSPEC with a hash device: either a keel-sealed
// verity partition (header first) or a plain `veritysetup format` hash
// device, whose root hash must then come from roothash=.
func (b *boot) singleImage() (*image, error) {
	if b.cfg.VerityHash == "" {
		return nil, fmt.Errorf("roothash= is set but no hash device: add systemd.verity_root_hash=DEVSPEC")
	}
	dataDev, err := b.waitFor("root", b.cfg.Root)
	if err != nil {
		return nil, err
	}
	hashDev, err := b.waitFor("verity hash", b.cfg.VerityHash)
	if err != nil {
		return nil, err
	}
	raw, err := readHead(hashDev, slots.HeaderSize)
	if err != nil {
		return nil, fmt.Errorf("hash device: %w", err)
	}
	img, err := b.headerImage("hash device", dataDev, hashDev, raw)
	if errors.Is(err, slots.ErrNoHeader) {
		img, err = b.superblockImage(raw, dataDev, hashDev)
	}
	if err != nil {
		return nil, err
	}
	img.name = "keel-root"
	img.target.Name = img.name
	return img, nil
}

func (b *boot) superblockImage(raw []byte, dataDev, hashDev string) (*image, error) {
	sb, err := verity.ParseSuperblock(raw)
	if err != nil {
		return nil, fmt.Errorf("hash device %s: neither a keel slot header nor a veritysetup superblock: %w", hashDev, err)
	}
	if b.cfg.RootHash == "" {
		return nil, fmt.Errorf("hash device %s has no keel header: roothash= is required", hashDev)
	}
	img := &image{dataDev: dataDev, hashDev: hashDev, target: verity.Target{
		DataDev: dataDev, HashDev: hashDev, Params: sb.Params(), Options: b.cfg.VerityOptions,
	}}
	return img, b.overrideRootHash(img)
}

// mountImage opens dm-verity over the image, mounts it read-only and stacks
// the overlay on top, then checks the new root has an init.
func (b *boot) mountImage(layout mounts.Layout, img *image) error {
	if b.rep.Devices == nil {
		b.rep.Devices = map[string]string{}
	}
	b.rep.Devices["image"], b.rep.Devices["hash"] = img.dataDev, img.hashDev
	dev := img.dataDev
	if b.cfg.VerityOff {
		b.warnLoud("verity=off: root NOT VERIFIED: %s is mounted without dm-verity", dev)
	} else {
		if err := b.checkAuthenticated(img); err != nil {
			return err
		}
		b.need("dm_verity")
		mapped, err := verity.Open(img.target)
		if err != nil {
			return verityFault(img, err)
		}
		dev = mapped
		b.rep.Devices["verity"] = mapped
		b.rep.RootHash = fmt.Sprintf("%x", img.target.RootHash)
		b.rep.Authenticated, b.rep.HashSource, b.rep.KeyID = img.authed, img.hashFrom, img.keyID
	}
	b.rep.ImageID, b.rep.RollbackIndex = img.imageID, img.rollback
	b.need("squashfs")
	if err := b.stack.Do(layout.Image(dev, "squashfs")); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fault(stepFSModule, err)
		}
		return fault(stepMountImage, fmt.Errorf("%w (is the image a valid SquashFS? a corrupt superblock fails here)", err))
	}
	id := img.imageID
	if id == "" && len(img.target.RootHash) > 0 {
		id = fmt.Sprintf("%x", img.target.RootHash[:min(6, len(img.target.RootHash))])
	}
	return b.assemble(layout, id)
}

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
	b.mergeEtc(layout, mode, upper)
	ms, err := layout.RootMounts(mode, upper)
	if err != nil {
		return err
	}
	if mode != mounts.OverlayOff {
		b.need("overlay")
	}
	err = b.stack.DoAll(ms...)
	if err != nil && mode != mounts.OverlayPersistent {
		return fault(stepOverlay, err)
	}
	if err == nil {
		err = b.bindData(layout)
	}
	if err != nil {
		for _, e := range b.stack.UndoTo(mark) {
			b.log.Warnf("undo the data partition's mounts in the new root: %v", e)
		}
		b.volatile(b.data.dev, err)
		return b.assemble(layout, imageID)
	}
	b.rep.Overlay = mode
	return b.checkInit(layout.NewRoot)
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

// plainFSTypes are tried in order when rootfstype= is not given.
var plainFSTypes = []string{"ext4", "btrfs", "xfs", "squashfs", "erofs", "f2fs", "vfat"}

// plainRoot mounts root=DEVSPEC directly, like any initramfs: read-only, the
// real init remounts it. Refused when the initramfs is locked.
func (b *boot) plainRoot(layout mounts.Layout) error {
	if b.baked.Locked {
		return fmt.Errorf("root=%s without a root hash: refused, the initramfs is locked (give roothash= via a sealed image)", b.cfg.Root)
	}
	dev, err := b.waitFor("root", b.cfg.Root)
	if err != nil {
		return err
	}
	b.rep.Devices = map[string]string{"root": dev}
	b.warnLoud("plain root %s: root NOT VERIFIED: nothing authenticates what it runs", dev)
	types := plainFSTypes
	if b.cfg.RootFSType != "" {
		types = []string{b.cfg.RootFSType}
	}
	target := layout.NewRoot
	overlay := b.cfg.Overlay == mounts.OverlayTmpfs
	if overlay {
		target = layout.Lower
	}
	if err := b.mountAny(dev, target, types, b.cfg.RootFlags); err != nil {
		return err
	}
	if overlay {
		return b.assemble(layout, "")
	}
	b.rep.Overlay = mounts.OverlayOff
	b.prepareData(layout, "")
	mark := b.stack.Len()
	if err := b.bindData(layout); err != nil {
		// The plain root is mounted at NewRoot itself: undo only the binds.
		for _, e := range b.stack.UndoTo(mark) {
			b.log.Warnf("undo the data partition's binds: %v", e)
		}
		b.volatile(b.data.dev, err)
	}
	return b.checkInit(layout.NewRoot)
}

// mountAny mounts dev read-only trying each filesystem type in turn.
func (b *boot) mountAny(dev, target string, types []string, data string) error {
	var errs []string
	for _, t := range types {
		b.need(t)
		err := b.stack.Do(mounts.Mount{Source: dev, Target: target, FSType: t, Flags: unix.MS_RDONLY, Data: data})
		if err == nil {
			b.log.Infof("mounted %s on %s as %s", dev, target, t)
			return nil
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) || len(types) == 1 {
			return err
		}
		errs = append(errs, t)
	}
	return fmt.Errorf("mount %s: not a filesystem this initramfs can mount (tried %s)", dev, strings.Join(errs, ", "))
}

// verityFault classifies a failure to open dm-verity: a first read that
// fails (EIO) is a root hash that does not match the data, an image fault
// unless the root hash came from a roothash= typed on the command line (a
// baked one is the builder's); anything else is the device-mapper's, an
// environment fault.
func verityFault(img *image, err error) error {
	switch {
	case !errors.Is(err, unix.EIO):
		return fault(stepDM, err)
	case img.hashFrom == "cmdline" && !img.bakedHash:
		return fault(stepRootHashArg, err)
	}
	return fault(stepRootHash, err)
}
