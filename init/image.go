// SPDX-License-Identifier: Apache-2.0

package main

import (
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
		return b.mountFault(img, err)
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

// mountFault classifies a failure to mount the image: a missing module is
// the kernel's, an EIO the disk's when the partitions fail when read
// directly (diskFault), anything else the image's.
func (b *boot) mountFault(img *image, err error) error {
	if errors.Is(err, unix.ENODEV) {
		return fault(stepFSModule, err)
	}
	if derr := b.diskFault(img, err); derr != nil {
		return derr
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
		rerr = verity.ReadDevice(img.dataDev, b.watchdogProgress)
	} else {
		rerr = verity.ReadAll(img.target, b.watchdogProgress)
	}
	b.watchdogProgress()
	if rerr != nil {
		return fault(stepImageRead, fmt.Errorf("%w; read directly, the slot's partitions fail too: %v", err, rerr))
	}
	return nil
}

// verityFault classifies a failure to open dm-verity: a first read that
// fails (EIO) is a root hash that does not match the data, an image fault
// unless the root hash came from a roothash= typed on the command line (a
// baked one is the builder's) — or unless the blocks of that read cannot
// be read from the partitions directly either: dm-verity says EIO for a
// disk's I/O error too, and a disk's fault must not retire a slot that
// works; anything else is the device-mapper's, an environment fault.
func verityFault(img *image, err error) error {
	switch {
	case !errors.Is(err, unix.EIO):
		return fault(stepDM, err)
	}
	if rerr := verity.ReadPath(img.target); rerr != nil {
		return fault(stepImageRead, fmt.Errorf("%w; read directly, the slot's partitions fail too: %v", err, rerr))
	}
	if img.hashFrom == "cmdline" && !img.bakedHash {
		return fault(stepRootHashArg, err)
	}
	return fault(stepRootHash, err)
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
