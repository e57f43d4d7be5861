// SPDX-License-Identifier: Apache-2.0

package main

import (
	"github.com/keel-boot/keel/mounts"
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
	// rollbackSigned: a trusted key signed the rollback index for the
	// root hash in use; else it is neither checked against the floor nor
	// reported (docs/formats.md, "Anti-rollback").
	rollbackSigned bool
	// bakedHash: the roothash= in use is the one baked into the initramfs.
	bakedHash bool
}

// signedRollback is the rollback index the boot reports, which mark-good
// raises the floor to: 0 unless a trusted key signed it.
func (img *image) signedRollback() uint64 {
	if img.rollbackSigned {
		return img.rollback
	}
	return 0
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
