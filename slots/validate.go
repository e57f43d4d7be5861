// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/keel-boot/keel/verity"
)

// validate checks the meaning of every field, the same way for a header
// about to be written and one just read, so that keel never writes a header
// it would refuse to boot.
func (h *Header) validate() error {
	if err := checkImageID(h.ImageID); err != nil {
		return err
	}
	if h.Created.Before(time.Unix(0, 0)) {
		return fmt.Errorf("slot header: creation time %s, expected 1970 or later", h.Created.UTC().Format(time.RFC3339))
	}
	if err := checkVerity(h.Verity, h.ImageSize); err != nil {
		return err
	}
	if err := h.checkHashArea(); err != nil {
		return err
	}
	if want := h.Verity.DigestSize(); len(h.RootHash) != want {
		return fmt.Errorf("slot header: root hash is %d bytes, expected %d for %s",
			len(h.RootHash), want, h.Verity.HashAlg)
	}
	return nil
}

// checkImageID allows printable ASCII without spaces, so an id can be shown
// in logs and on a kernel command line without quoting.
func checkImageID(id string) error {
	if id == "" || len(id) > imageIDMax {
		return fmt.Errorf("slot header: image id is %d bytes, expected 1 to %d", len(id), imageIDMax)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("slot header: image id %q: byte %d is %#02x, expected printable ASCII without spaces", id, i, c)
		}
	}
	return nil
}

// checkVerity checks the tree parameters: keel's own limits first (they are
// stricter than veritysetup's), then the verity package's.
func checkVerity(p verity.Params, imageSize uint64) error {
	if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
		return err
	}
	if err := checkBlockSize("hash block size", p.HashBlockSize); err != nil {
		return err
	}
	if err := checkDataBlocks(p, imageSize); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("slot header: %w", err)
	}
	return nil
}

// checkBlockSize enforces what dm-verity accepts: a power of two between 512
// bytes and 64 KiB.
func checkBlockSize(name string, n uint32) error {
	if n < 512 || n > 65536 || bits.OnesCount32(n) != 1 {
		return fmt.Errorf("slot header: %s %d, expected a power of two from 512 to 65536", name, n)
	}
	return nil
}

// checkDataBlocks insists that the tree covers the whole image and nothing
// more: a tail outside the tree would be readable but never verified.
func checkDataBlocks(p verity.Params, imageSize uint64) error {
	bs := uint64(p.DataBlockSize)
	if imageSize == 0 || imageSize%bs != 0 || imageSize > math.MaxInt64 {
		return fmt.Errorf("slot header: image size %d, expected a non-zero multiple of the %d-byte data block", imageSize, bs)
	}
	if p.DataBlocks != imageSize/bs {
		return fmt.Errorf("slot header: %d data blocks, expected %d for a %d-byte image in %d-byte blocks",
			p.DataBlocks, imageSize/bs, imageSize, bs)
	}
	return nil
}

// checkHashArea checks that the hash device lies after the header, at a
// position dm-verity can address in hash blocks, and has the size the tree
// parameters imply.
func (h *Header) checkHashArea() error {
	hbs := uint64(h.Verity.HashBlockSize)
	if h.HashOffset < HeaderSize || h.HashOffset%hbs != 0 {
		return fmt.Errorf("slot header: hash offset %d, expected a multiple of the %d-byte hash block, at least %d",
			h.HashOffset, hbs, HeaderSize)
	}
	want := verity.HashDeviceSize(h.Verity)
	if want <= 0 || h.HashSize != uint64(want) {
		return fmt.Errorf("slot header: hash device size %d, expected %d for %d data blocks",
			h.HashSize, want, h.Verity.DataBlocks)
	}
	if h.HashOffset > math.MaxInt64-h.HashSize {
		return fmt.Errorf("slot header: hash offset %d plus size %d overflows", h.HashOffset, h.HashSize)
	}
	return nil
}

// checkSignatureFields insists that a header is either fully unsigned (zero
// key id, no signature) or carries both.
func (h *Header) checkSignatureFields() error {
	switch {
	case !h.Signed() && len(h.Signature) != 0:
		return fmt.Errorf("slot header: %d-byte signature with a zero key id, expected none", len(h.Signature))
	case h.Signed() && len(h.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("slot header: signature is %d bytes, expected %d (ed25519)", len(h.Signature), ed25519.SignatureSize)
	}
	return nil
}
