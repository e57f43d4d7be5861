// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keel-boot/keel/verity"
)

// ErrNoHeader reports a verity partition that does not start with the keel
// header magic (an empty or foreign partition rather than a corrupt header).
var ErrNoHeader = errors.New("no keel slot header")

// Header is the slot header at offset 0 of a verity-X partition: what the
// init needs to open dm-verity over root-X and to decide whether to trust it.
type Header struct {
	// ImageID names the image for humans and the boot report: 1 to 64
	// printable ASCII characters, no spaces.
	ImageID string
	// Created is when the image was sealed, to the second (UTC).
	Created time.Time
	// ImageSize is the SquashFS image size in bytes.
	ImageSize uint64
	// Verity holds the hash tree parameters, as in the veritysetup superblock.
	Verity verity.Params
	// HashOffset is where the hash device (superblock + tree) starts in the
	// verity partition; HashSize is its size in bytes.
	HashOffset, HashSize uint64
	// RootHash is the root of the hash tree.
	RootHash []byte
	// RollbackIndex orders images for anti-rollback: the boot state keeps
	// the highest index of any image marked good, and a locked init
	// refuses a lower one. It is signed with the rest of the header.
	RollbackIndex uint64
	// KeyID is KeyID() of the signing key, all zero when unsigned.
	KeyID [32]byte
	// Signature is the ed25519 signature of the header bytes before it,
	// nil when unsigned.
	Signature []byte
}

// Signed reports whether the header carries a signature.
func (h *Header) Signed() bool { return h.KeyID != [32]byte{} }

// MarshalBinary encodes the header into exactly HeaderSize bytes.
func (h *Header) MarshalBinary() ([]byte, error) {
	if err := h.checkSignatureFields(); err != nil {
		return nil, err
	}
	b, err := h.encodeSigned()
	if err != nil {
		return nil, err
	}
	copy(b[offSignature:offChecksum], h.Signature)
	sum := sha256.Sum256(b[:offChecksum])
	copy(b[offChecksum:offReserved2], sum[:])
	return b, nil
}

// encodeSigned validates the header and encodes every field up to and
// including the key id: the bytes a signature covers, followed by zeros.
func (h *Header) encodeSigned() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	b := make([]byte, HeaderSize)
	copy(b[offMagic:], headerMagic)
	le.PutUint32(b[offVersion:], headerVersion)
	le.PutUint32(b[offHeaderSize:], HeaderSize)
	copy(b[offImageID:offCreated], h.ImageID)
	le.PutUint64(b[offCreated:], uint64(h.Created.Unix()))
	le.PutUint64(b[offImageSize:], h.ImageSize)
	copy(b[offHashAlg:offDataBS], h.Verity.HashAlg)
	le.PutUint32(b[offDataBS:], h.Verity.DataBlockSize)
	le.PutUint32(b[offHashBS:], h.Verity.HashBlockSize)
	le.PutUint64(b[offDataBlocks:], h.Verity.DataBlocks)
	le.PutUint64(b[offHashOffset:], h.HashOffset)
	le.PutUint64(b[offHashSize:], h.HashSize)
	copy(b[offUUID:offSaltLen], h.Verity.UUID[:])
	le.PutUint16(b[offSaltLen:], uint16(len(h.Verity.Salt)))
	le.PutUint16(b[offRootLen:], uint16(len(h.RootHash)))
	le.PutUint64(b[offRollback:], h.RollbackIndex)
	copy(b[offSalt:offRootHash], h.Verity.Salt)
	copy(b[offRootHash:offKeyID], h.RootHash)
	copy(b[offKeyID:offSignature], h.KeyID[:])
	return b, nil
}

// ParseHeader decodes and checks a slot header: magic, version, checksum,
// canonical padding and the sanity of every field. It does not check the
// signature; see Authenticate.
func ParseHeader(b []byte) (*Header, error) {
	if err := checkFrame(b); err != nil {
		return nil, err
	}
	h, err := decode(b)
	if err != nil {
		return nil, err
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	if err := h.checkSignatureFields(); err != nil {
		return nil, err
	}
	return h, nil
}

// checkFrame checks what does not depend on the fields' meaning: size, magic,
// version, checksum and the zero reserved areas.
func checkFrame(b []byte) error {
	if len(b) != HeaderSize {
		return fmt.Errorf("slot header: %d bytes, expected %d", len(b), HeaderSize)
	}
	if string(b[offMagic:offVersion]) != headerMagic {
		return fmt.Errorf("slot header: magic %q, expected %q: %w",
			b[offMagic:offVersion], headerMagic, ErrNoHeader)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[offVersion:]); v != headerVersion {
		return fmt.Errorf("slot header: version %d, this keel reads version %d", v, headerVersion)
	}
	stored := b[offChecksum:offReserved2]
	if sum := sha256.Sum256(b[:offChecksum]); !bytes.Equal(stored, sum[:]) {
		return fmt.Errorf("slot header: checksum mismatch: stored %s…, computed %s…",
			short(stored), short(sum[:]))
	}
	if n := le.Uint32(b[offHeaderSize:]); n != HeaderSize {
		return fmt.Errorf("slot header: header size field %d, expected %d", n, HeaderSize)
	}
	if err := checkZero("reserved bytes", b, offReserved1, offRollback); err != nil {
		return err
	}
	return checkZero("reserved bytes", b, offReserved2, HeaderSize)
}

// decode reads the fields of a framed header, insisting on canonical
// padding so that one header has exactly one encoding.
func decode(b []byte) (*Header, error) {
	le := binary.LittleEndian
	id, err := paddedString("image id", b, offImageID, offCreated)
	if err != nil {
		return nil, err
	}
	alg, err := paddedString("hash algorithm", b, offHashAlg, offDataBS)
	if err != nil {
		return nil, err
	}
	salt, err := prefixBytes("salt", b, offSalt, offRootHash, int(le.Uint16(b[offSaltLen:])))
	if err != nil {
		return nil, err
	}
	root, err := prefixBytes("root hash", b, offRootHash, offKeyID, int(le.Uint16(b[offRootLen:])))
	if err != nil {
		return nil, err
	}
	created := int64(le.Uint64(b[offCreated:]))
	if created < 0 {
		return nil, fmt.Errorf("slot header: creation time %d, expected seconds since 1970", created)
	}
	h := &Header{
		ImageID:   id,
		Created:   time.Unix(created, 0).UTC(),
		ImageSize: le.Uint64(b[offImageSize:]),
		Verity: verity.Params{
			HashAlg:       alg,
			DataBlockSize: le.Uint32(b[offDataBS:]),
			HashBlockSize: le.Uint32(b[offHashBS:]),
			DataBlocks:    le.Uint64(b[offDataBlocks:]),
			Salt:          salt,
		},
		HashOffset:    le.Uint64(b[offHashOffset:]),
		HashSize:      le.Uint64(b[offHashSize:]),
		RootHash:      root,
		RollbackIndex: le.Uint64(b[offRollback:]),
	}
	copy(h.Verity.UUID[:], b[offUUID:offSaltLen])
	copy(h.KeyID[:], b[offKeyID:offSignature])
	if h.Signed() {
		h.Signature = bytes.Clone(b[offSignature:offChecksum])
	} else if err := checkZero("signature of an unsigned header", b, offSignature, offChecksum); err != nil {
		return nil, err
	}
	return h, nil
}

// paddedString reads a NUL-padded string field: no byte after the first NUL
// may be non-zero.
func paddedString(name string, b []byte, from, to int) (string, error) {
	f := b[from:to]
	n := bytes.IndexByte(f, 0)
	if n < 0 {
		return string(f), nil
	}
	if err := checkZero(name+" padding", b, from+n, to); err != nil {
		return "", err
	}
	return string(f[:n]), nil
}

// prefixBytes reads a length-prefixed byte field of at most to-from bytes
// whose unused tail must be zero.
func prefixBytes(name string, b []byte, from, to, n int) ([]byte, error) {
	if n > to-from {
		return nil, fmt.Errorf("slot header: %s length %d, expected at most %d", name, n, to-from)
	}
	if err := checkZero(name+" padding", b, from+n, to); err != nil {
		return nil, err
	}
	return bytes.Clone(b[from : from+n]), nil
}

func checkZero(name string, b []byte, from, to int) error {
	for i := from; i < to; i++ {
		if b[i] != 0 {
			return fmt.Errorf("slot header: %s at offset %d: found %#02x, expected zero", name, i, b[i])
		}
	}
	return nil
}

// short returns the first 4 bytes of b in hex, the usual way keel names
// hashes and keys in messages.
func short(b []byte) string {
	if len(b) > 4 {
		b = b[:4]
	}
	return hex.EncodeToString(b)
}
