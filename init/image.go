// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

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
		mapped, err := b.openVerity(img, verity.Open, verity.CheckPath)
		if err != nil {
			return err
		}
		dev = mapped
		b.rep.Devices["verity"] = mapped
		b.rep.RootHash = fmt.Sprintf("%x", img.target.RootHash)
		b.rep.Authenticated, b.rep.HashSource, b.rep.KeyID = img.authed, img.hashFrom, img.keyID
	}
	b.rep.ImageID, b.rep.RollbackIndex = img.imageID, img.signedRollback()
	b.need("squashfs")
	mark := b.stack.Len()
	mnt := layout.Image(dev, "squashfs")
	mount := func() error {
		if err := b.stack.Do(mnt); err != nil {
			return b.mountFault(img, err, func() error { return b.stack.Do(mnt) })
		}
		return nil
	}
	if err := mount(); err != nil {
		return err
	}
	lookup := func() error {
		_, err := mounts.ResolveInit(layout.Lower, b.cfg.Init)
		return err
	}
	remount := func() error {
		if errs := b.stack.UndoTo(mark); len(errs) > 0 {
			return fault(stepMountImage, fmt.Errorf("unmounting the image to mount it again: %w", errors.Join(errs...)))
		}
		return mount()
	}
	if err := b.initReadFault(img, lookup, remount); err != nil {
		return err
	}
	id := img.imageID
	if id == "" && len(img.target.RootHash) > 0 {
		id = fmt.Sprintf("%x", img.target.RootHash[:min(6, len(img.target.RootHash))])
	}
	err := b.assemble(layout, id)
	if bootstate.ClassOf(err) == bootstate.Image {
		// The init's lookup reads the image's directories: an EIO there
		// is the disk's as it is for the mount.
		if derr := b.diskFault(img, err); derr != nil {
			return derr
		}
	}
	return err
}

// initReadFault looks the init up in the image alone (lookup), right after
// its mount, where a read error of the disk that does not come back can
// still be met by mounting the image again (remount): SquashFS keeps a
// metadata block that failed to read in its cache, with its error, so
// every later lookup on that mount fails the same way, and the init's
// lookup through the assembled root (checkInit), after the data
// partition's preparation, could only count it as the image's. Only an EIO
// is acted on, and only when the slot's partitions read fine when read
// directly (else it is the disk's: diskFault). Whatever the lookup finds
// after the image is mounted again is checkInit's to classify: an EIO that
// comes back is the image's, as for the mount. Anything else (no init, an
// init= the image lacks) is left to checkInit too, which sees the root
// the upper makes.
func (b *boot) initReadFault(img *image, lookup, remount func() error) error {
	err := lookup()
	if !errors.Is(err, unix.EIO) {
		return nil
	}
	if derr := b.diskFault(img, err); derr != nil {
		return derr
	}
	b.warnLoud("looking up the init in the image of %s: %v; read directly, the slot's partitions read fine: mounting the image again", img.dataDev, err)
	return remount()
}

// mountFault classifies a failure to mount the image: a missing module is
// the kernel's, an EIO the disk's when the partitions fail when read
// directly (diskFault), anything else the image's. An EIO while the
// partitions read fine is mounted again (again) first: a read error of the
// disk that does not come back must not retire a slot that works, and
// SquashFS's EIO for content it cannot decompress comes back. It returns
// nil when that mount succeeds.
func (b *boot) mountFault(img *image, err error, again func() error) error {
	if errors.Is(err, unix.ENODEV) {
		return fault(stepFSModule, err)
	}
	if derr := b.diskFault(img, err); derr != nil {
		return derr
	}
	if errors.Is(err, unix.EIO) {
		b.warnLoud("mounting the image of %s: %v; read directly, the slot's partitions read fine: mounting it again", img.dataDev, err)
		if err = again(); err == nil {
			return nil
		}
	}
	return fault(stepMountImage, fmt.Errorf("%w (is the image a valid SquashFS? a corrupt superblock fails here)", err))
}

// diskFault returns err as an environment fault ("image read") when it is
// an EIO and the slot's partitions fail when read directly: every data block
// and the hash tree (the data device alone with verity=off). An EIO alone
// proves nothing: dm-verity says EIO for a device's error as for a mismatch
// (without a corruption mode), SquashFS for content it cannot decompress as
// for a read that failed; a disk's fault must not retire a slot that works,
// and a signed but broken image must not stay on trial for ever. It returns
// nil otherwise (err is the image's). The read renews the watchdog lease as
// it goes: it reads the whole image, on this failure path only.
func (b *boot) diskFault(img *image, err error) error {
	if !errors.Is(err, unix.EIO) {
		return nil
	}
	var rerr error
	if b.cfg.VerityOff {
		rerr = verity.ReadDevice(img.dataDev, b.progress)
	} else {
		rerr = verity.ReadAll(img.target, b.progress)
	}
	b.progress()
	if rerr != nil {
		return fault(stepImageRead, fmt.Errorf("%w; read directly, the slot's partitions fail too: %v", err, rerr))
	}
	return nil
}

// openVerity opens dm-verity over the image (open) and classifies a
// failure: a first read that fails (EIO) is a root hash that does not
// match the data, an image fault unless the root hash came from a
// roothash= typed on the command line (a baked one is the builder's). But
// dm-verity says EIO for a disk's I/O error too, so the blocks of that read
// (the first page's) are read from the partitions directly and checked
// (check, verity.CheckPath): when they
// cannot be read the fault is the disk's, and when they read and match the
// root hash the EIO was not the image's (a read error that did not come
// back): the device is opened once more, and a second such failure is the
// disk's or the device-mapper's. A disk's fault must not retire a slot that
// works. Anything but an EIO is the device-mapper's, an environment fault.
func (b *boot) openVerity(img *image, open func(verity.Target) (string, error), check func(verity.Target) error) (string, error) {
	for try := 1; ; try++ {
		mapped, err := open(img.target)
		if err == nil {
			return mapped, nil
		}
		if !errors.Is(err, unix.EIO) {
			return "", fault(stepDM, err)
		}
		cerr := check(img.target)
		switch {
		case cerr == nil && try == 1:
			b.warnLoud("%v; but the same blocks, read directly, match the root hash: a read error that did not come back, not the image; opening it again", err)
			continue
		case cerr == nil:
			return "", fault(stepImageRead, fmt.Errorf("%w; twice, while the same blocks read directly match the root hash: the disk's or the device-mapper's fault, not the image's", err))
		case !errors.Is(cerr, verity.ErrMismatch):
			return "", fault(stepImageRead, fmt.Errorf("%w; read directly, the slot's partitions fail too: %v", err, cerr))
		case img.hashFrom == "cmdline" && !img.bakedHash:
			return "", fault(stepRootHashArg, fmt.Errorf("%w (%v)", err, cerr))
		}
		return "", fault(stepRootHash, fmt.Errorf("%w (%v)", err, cerr))
	}
}

// headerImage reads the keel slot header at the start of hashDev and builds
// the verity target from it, after checking its signature.
func (b *boot) headerImage(what, dataDev, hashDev string, raw []byte) (*image, error) {
	h, err := slots.ParseHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", what, hashDev, err)
	}
	authed, err := h.Authenticate(b.trustedKeys())
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", what, hashDev, err)
	}
	img := &image{
		dataDev: dataDev, hashDev: hashDev, imageID: h.ImageID,
		authed: authed, hashFrom: "header", rollback: h.RollbackIndex,
		target: verity.Target{
			DataDev: dataDev, HashDev: hashDev, HashOffset: h.HashOffset,
			Params: h.Verity, RootHash: h.RootHash, Options: b.cfg.VerityOptions,
		},
	}
	if authed {
		img.keyID = hex.EncodeToString(h.KeyID[:8])
	}
	if b.cfg.RootHash != "" {
		if err := b.overrideRootHash(img); err != nil {
			return nil, err
		}
	}
	// Not signed, or signed for another root hash than the one in use (a
	// roothash= that replaces it): the index is anyone's to write, and
	// raised into the floor by mark-good it would refuse every later image
	// (found by a hunting helper).
	img.rollbackSigned = authed && bytes.Equal(img.target.RootHash, h.RootHash)
	return img, nil
}

// overrideRootHash applies roothash= from the command line, which is trusted
// as the command line is (a locked initramfs refuses the option earlier).
func (b *boot) overrideRootHash(img *image) error {
	root, err := hex.DecodeString(b.cfg.RootHash)
	if err != nil {
		return fmt.Errorf("roothash=%s: %w", b.cfg.RootHash, err)
	}
	img.target.RootHash = root
	img.authed, img.hashFrom = true, "cmdline"
	img.bakedHash = b.cfg.RootHash == b.base.RootHash
	return nil
}

func (b *boot) trustedKeys() []ed25519.PublicKey {
	keys := make([]ed25519.PublicKey, 0, len(b.baked.TrustedKeys))
	for _, k := range b.baked.TrustedKeys {
		keys = append(keys, ed25519.PublicKey(k))
	}
	return keys
}

// readHead reads the first n bytes of a device.
func readHead(dev string, n int) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("read %d bytes from %s: %w", n, dev, err)
	}
	return buf, nil
}
