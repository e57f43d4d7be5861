// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/keel-boot/keel/verity"
)

// ReadHeader reads and parses the header at offset 0 of a verity partition.
func ReadHeader(verityPart io.ReaderAt) (*Header, error) {
	b := make([]byte, HeaderSize)
	if _, err := verityPart.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read slot header: %w", err)
	}
	return ParseHeader(b)
}

// HashDevice is the hash device (veritysetup superblock + tree) inside a
// verity partition described by h.
func (h *Header) HashDevice(verityPart io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(verityPart, int64(h.HashOffset), int64(h.HashSize))
}

// VerifyPartition is the full offline check of a slot: it parses the header,
// authenticates it against trusted (see Authenticate) and recomputes the hash
// tree of image, comparing it with the stored tree and root hash. It returns
// the header and whether its signature was authenticated.
func VerifyPartition(image, verityPart io.ReaderAt, trusted []ed25519.PublicKey) (*Header, bool, error) {
	h, err := ReadHeader(verityPart)
	if err != nil {
		return nil, false, err
	}
	authenticated, err := h.Authenticate(trusted)
	if err != nil {
		return h, false, err
	}
	if err := verity.Verify(image, h.HashDevice(verityPart), h.Verity, h.RootHash); err != nil {
		return h, authenticated, fmt.Errorf("image %s: %w", h.ImageID, err)
	}
	return h, authenticated, nil
}
