// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"

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
