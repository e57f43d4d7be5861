// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/keel-boot/keel/verity"
)

// SealOptions says how to seal an image.
type SealOptions struct {
	// ImageID names the image; empty means the first 12 hex digits of the
	// root hash, which identifies this exact seal.
	ImageID string
	// Key signs the header; nil leaves it unsigned.
	Key ed25519.PrivateKey
	// Salt of the hash tree; nil means 32 random bytes (or, when
	// Reproducible, bytes derived from the image), empty means no salt.
	Salt []byte
	// UUID of the verity superblock; nil means random (or, when
	// Reproducible, derived from the image).
	UUID *[16]byte
	// RollbackIndex goes into the signed header (Header.RollbackIndex).
	RollbackIndex uint64
	// Created is the seal time; zero means now.
	Created time.Time
	// Reproducible derives a missing salt and UUID from the image content
	// instead of drawing them at random, so that sealing the same image at
	// the same Created time gives the same bytes (see SOURCE_DATE_EPOCH).
	Reproducible bool
}

// squashfsMagic opens every SquashFS 4 image (little-endian "sqsh").
const squashfsMagic = "hsqs"

// Seal reads a SquashFS image of size bytes and writes the content of its
// verity partition to out: the header, then at HashOffset the hash device
// exactly as `veritysetup format --hash-offset=4096` writes it.
func Seal(image io.ReaderAt, size int64, o SealOptions, out io.Writer) (*Header, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := checkSquashFS(image, size); err != nil {
		return nil, err
	}
	p, err := sealParams(image, size, o)
	if err != nil {
		return nil, err
	}
	var tree bytes.Buffer
	root, err := verity.Format(image, p, &tree)
	if err != nil {
		return nil, err
	}
	h, err := newHeader(p, size, root, uint64(tree.Len()), o)
	if err != nil {
		return nil, err
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(b); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if _, err := tree.WriteTo(out); err != nil {
		return nil, fmt.Errorf("write hash tree: %w", err)
	}
	return h, nil
}

// check refuses bad options before the image is read, not after.
func (o SealOptions) check() error {
	if o.ImageID != "" {
		if err := checkImageID(o.ImageID); err != nil {
			return err
		}
	}
	if o.Key != nil && len(o.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key is %d bytes, expected %d (ed25519)", len(o.Key), ed25519.PrivateKeySize)
	}
	if len(o.Salt) > saltMax {
		return fmt.Errorf("salt is %d bytes, expected at most %d", len(o.Salt), saltMax)
	}
	return nil
}

// newHeader fills and signs the header of a freshly formatted tree.
func newHeader(p verity.Params, size int64, root []byte, treeSize uint64, o SealOptions) (*Header, error) {
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	h := &Header{
		ImageID:    o.ImageID,
		Created:    time.Unix(created.Unix(), 0).UTC(),
		ImageSize:  uint64(size),
		Verity:     p,
		HashOffset: HashOffset,
		HashSize:   treeSize,
		RootHash:   root,

		RollbackIndex: o.RollbackIndex,
	}
	if h.ImageID == "" {
		h.ImageID = hex.EncodeToString(root)[:12]
	}
	if o.Key != nil {
		if err := h.Sign(o.Key); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// checkSquashFS refuses what is not a whole SquashFS image in whole verity
// data blocks: veritysetup would silently leave a partial last block out of
// the tree, unverified.
func checkSquashFS(image io.ReaderAt, size int64) error {
	var sb [48]byte
	if _, err := image.ReadAt(sb[:], 0); err != nil {
		return fmt.Errorf("read SquashFS superblock: %w", err)
	}
	if string(sb[:4]) != squashfsMagic {
		return fmt.Errorf("image starts with %q, expected the SquashFS magic %q: not a SquashFS image", sb[:4], squashfsMagic)
	}
	// bytes_used, at offset 40 of the SquashFS 4 superblock.
	if used := binary.LittleEndian.Uint64(sb[40:]); used > uint64(size) {
		return fmt.Errorf("SquashFS says it uses %d bytes but the image is %d bytes: truncated", used, size)
	}
	if size%verity.DefaultBlockSize != 0 {
		return fmt.Errorf("image is %d bytes, expected a multiple of %d: build it with mksquashfs's default padding (not -nopad) or pad it with truncate -s %%%d",
			size, verity.DefaultBlockSize, verity.DefaultBlockSize)
	}
	return nil
}

// sealParams picks the tree parameters: veritysetup's defaults, the salt and
// UUID from the options or drawn at random or derived from the image.
func sealParams(image io.ReaderAt, size int64, o SealOptions) (verity.Params, error) {
	p := verity.Params{Salt: o.Salt}.WithDefaults()
	p.DataBlocks = verity.DataBlocksFor(size, p)
	if o.UUID != nil {
		p.UUID = *o.UUID
	}
	if o.Salt != nil && o.UUID != nil {
		return p, nil
	}
	seed, err := seedFor(image, size, o.Reproducible)
	if err != nil {
		return p, err
	}
	if o.Salt == nil {
		p.Salt = derive(seed, "keel verity salt")
	}
	if o.UUID == nil {
		p.UUID = uuidFrom(derive(seed, "keel verity uuid"))
	}
	return p, nil
}

// seedFor returns the sha256 of the image when reproducible, else 32 random bytes.
func seedFor(image io.ReaderAt, size int64, reproducible bool) ([]byte, error) {
	seed := make([]byte, sha256.Size)
	if !reproducible {
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("random salt: %w", err)
		}
		return seed, nil
	}
	d := sha256.New()
	if _, err := io.Copy(d, io.NewSectionReader(image, 0, size)); err != nil {
		return nil, fmt.Errorf("hash image: %w", err)
	}
	return d.Sum(nil), nil
}

// derive separates the salt and the UUID drawn from one seed.
func derive(seed []byte, label string) []byte {
	d := sha256.New()
	d.Write([]byte(label))
	d.Write(seed)
	return d.Sum(nil)
}

// uuidFrom makes a well-formed RFC 9562 version 8 (custom) UUID from b.
func uuidFrom(b []byte) [16]byte {
	var u [16]byte
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return u
}
