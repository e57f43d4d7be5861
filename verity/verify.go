// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// ErrMismatch is wrapped by every error Verify returns for a block or root
// hash that does not match.
var ErrMismatch = errors.New("hash mismatch")

// Verify recomputes the tree over data and checks it against the hash device
// (the layout Format writes, starting with the superblock, whose fields must
// equal p's; a zero p.UUID accepts any uuid) and the expected root hash. It checks from the root down, so an error names the highest
// block that is wrong: the root, a hash block of a level, or a data block.
func Verify(data io.ReaderAt, hash io.ReaderAt, p Params, root []byte) error {
	p = p.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return err
	}
	if len(root) != g.alg.size {
		return fmt.Errorf("verity: root hash is %d bytes, want %d for %s", len(root), g.alg.size, g.alg.name)
	}
	if err := checkSuperblock(hash, p); err != nil {
		return err
	}
	tree, err := g.allocTree()
	if err != nil {
		return err
	}
	stored := blockSource{r: hash, name: "hash tree", off: int64(g.hbs), n: g.treeBlocks(), bs: g.hbs}
	if err := stored.read(tree, 0); err != nil {
		return err
	}
	return g.verifyTree(data, tree, root)
}

// verifyTree checks the root, then each level against its parent, then the data.
func (g geometry) verifyTree(data io.ReaderAt, tree, root []byte) error {
	top := g.dataSource(data)
	if n := len(g.levels); n > 0 {
		top = g.levelSource(g.level(tree, n-1), n-1)
	}
	got, err := g.rootOf(top)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, root) {
		return fmt.Errorf("verity: root hash mismatch: %s block 0 hashes to %x, want %x: %w", top.name, got, root, ErrMismatch)
	}
	for i := len(g.levels) - 1; i >= 0; i-- {
		child := g.dataSource(data)
		if i > 0 {
			child = g.levelSource(g.level(tree, i-1), i-1)
		}
		if err := g.verifyLevel(child, g.level(tree, i), i); err != nil {
			return err
		}
	}
	return nil
}

// verifyLevel hashes the blocks of child and compares the digests with
// parent, the stored level i, padding included.
func (g geometry) verifyLevel(child blockSource, parent []byte, i int) error {
	computed := make([]byte, len(parent))
	if err := g.hashBlocks(child, computed); err != nil {
		return err
	}
	if bytes.Equal(computed, parent) {
		return nil
	}
	for b := uint64(0); b < child.n; b++ {
		s := g.slot(b)
		want, have := parent[s:s+uint64(g.alg.size)], computed[s:s+uint64(g.alg.size)]
		if !bytes.Equal(want, have) {
			return fmt.Errorf("verity: %s does not match level %d: %w (stored %s, computed %s)",
				g.where(i-1, b), i, ErrMismatch, short(want), short(have))
		}
	}
	return g.paddingError(computed, parent, i)
}

// where names block b of level i, or data block b when i is -1, with its
// byte offset on its device.
func (g geometry) where(i int, b uint64) string {
	if i < 0 {
		return fmt.Sprintf("data block %d (byte %d)", b, b*uint64(g.dbs))
	}
	return fmt.Sprintf("level %d hash block %d (hash device byte %d)", i, b, (1+g.levelStart(i)+b)*uint64(g.hbs))
}

// paddingError names the hash block of level i whose unused bytes are not
// zero; veritysetup verify rejects those too.
func (g geometry) paddingError(computed, parent []byte, i int) error {
	for off := 0; off < len(parent); off++ {
		if computed[off] != parent[off] {
			return fmt.Errorf("verity: %s: padding byte %d is %#02x, want 0: %w",
				g.where(i, uint64(off/g.hbs)), off%g.hbs, parent[off], ErrMismatch)
		}
	}
	return nil
}

// checkSuperblock reads the superblock at the start of hash and compares it with p.
func checkSuperblock(hash io.ReaderAt, p Params) error {
	b := make([]byte, superblockSize)
	if n, err := hash.ReadAt(b, 0); n < len(b) {
		return fmt.Errorf("verity: reading hash device superblock: got %d of %d bytes: %w", n, len(b), err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return fmt.Errorf("verity: hash device: %w", err)
	}
	return sameParams(sb.Params(), p)
}

// sameParams names the first field in which the superblock's params differ
// from want. A zero UUID in want matches any: the uuid protects nothing.
func sameParams(got, want Params) error {
	mismatch := func(field string, g, w any) error {
		return fmt.Errorf("verity: hash device superblock has %s %v, want %v", field, g, w)
	}
	switch {
	case got.HashAlg != want.HashAlg:
		return mismatch("hash algorithm", got.HashAlg, want.HashAlg)
	case got.DataBlockSize != want.DataBlockSize:
		return mismatch("data block size", got.DataBlockSize, want.DataBlockSize)
	case got.HashBlockSize != want.HashBlockSize:
		return mismatch("hash block size", got.HashBlockSize, want.HashBlockSize)
	case got.DataBlocks != want.DataBlocks:
		return mismatch("data blocks", got.DataBlocks, want.DataBlocks)
	case !bytes.Equal(got.Salt, want.Salt):
		return mismatch("salt", hexOrDash(got.Salt), hexOrDash(want.Salt))
	case want.UUID != [16]byte{} && got.UUID != want.UUID:
		return mismatch("uuid", FormatUUID(got.UUID), FormatUUID(want.UUID))
	}
	return nil
}

// short abbreviates a digest for error messages.
func short(d []byte) string {
	return hex.EncodeToString(d[:min(len(d), 4)]) + "…"
}

// hexOrDash is how dm tables and veritysetup spell a salt: "-" when empty.
func hexOrDash(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

// FormatUUID spells u as veritysetup prints it (8-4-4-4-12 lower-case hex).
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
