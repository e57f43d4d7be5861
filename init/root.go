package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// image is a verified root image ready to be opened with dm-verity.
type image struct {
	name     string // dm name
	dataDev  string
	hashDev  string
	target   verity.Target
	imageID  string
	keyID    string
	authed   bool
	hashFrom string
	rollback uint64 // the header's rollback index
	// bakedHash: the roothash= in use is the one baked into the initramfs.
	bakedHash bool
}

// mountRoot assembles the new root at /newroot in one of the three modes.
func (b *boot) mountRoot() error {
	layout := mounts.DefaultLayout
	switch {
	case b.cfg.Root != "" && (b.cfg.RootHash != "" || b.cfg.VerityHash != ""):
		b.rep.Mode = "single"
		img, err := b.singleImage()
		if err != nil {
			return err
		}
		return b.mountImage(layout, img)
	case b.cfg.Root != "":
		b.rep.Mode = "plain"
		return b.plainRoot(layout)
	}
	return b.slotBoot(layout)
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
	if err := b.checkRollback(slot.VerityLabel(), img.rollback); err != nil {
		return nil, err
	}
	img.name = "keel-root-" + string(slot)
	img.target.Name = img.name
	return img, nil
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
