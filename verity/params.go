// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"math/bits"
)

// Defaults of `veritysetup format`.
const (
	DefaultHashAlg   = "sha256"
	DefaultBlockSize = 4096
	// MaxSaltSize is the room for the salt in the superblock.
	MaxSaltSize = 256
	// superblockSize is the size of struct verity_sb on disk.
	superblockSize = 512
	// maxLevels is cryptsetup's VERITY_MAX_LEVELS; the kernel's limit is the same.
	maxLevels = 63
)

// Params of a hash tree; zero values mean veritysetup's defaults (sha256,
// 4096/4096, format version 1).
type Params struct {
	HashAlg       string   // "sha256", "sha512", "sha1", "sha224" or "sha384"
	DataBlockSize uint32   // default 4096
	HashBlockSize uint32   // default 4096
	DataBlocks    uint64   // number of data blocks covered by the tree
	Salt          []byte   // up to 256 bytes; empty means no salt
	UUID          [16]byte // written into the superblock
}

// algorithm is a hash function dm-verity and veritysetup both know.
type algorithm struct {
	name string
	size int
	new  func() hash.Hash
}

// lookupAlg finds a supported digest by its kernel crypto name; a switch
// rather than a map keeps it immutable.
func lookupAlg(name string) (algorithm, bool) {
	switch name {
	case "sha256":
		return algorithm{name, sha256.Size, sha256.New}, true
	case "sha512":
		return algorithm{name, sha512.Size, sha512.New}, true
	case "sha1":
		return algorithm{name, sha1.Size, sha1.New}, true
	case "sha224":
		return algorithm{name, sha256.Size224, sha256.New224}, true
	case "sha384":
		return algorithm{name, sha512.Size384, sha512.New384}, true
	}
	return algorithm{}, false
}

// WithDefaults fills the zero fields with veritysetup's defaults.
func (p Params) WithDefaults() Params {
	if p.HashAlg == "" {
		p.HashAlg = DefaultHashAlg
	}
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	return p
}

// Validate reports whether p describes a tree veritysetup could have written.
// Zero fields are not defaulted here: call WithDefaults first.
func (p Params) Validate() error {
	_, err := p.geometry()
	return err
}

// DigestSize is the size in bytes of a root hash for p's algorithm (0 if unknown).
func (p Params) DigestSize() int {
	alg, _ := lookupAlg(p.WithDefaults().HashAlg)
	return alg.size
}

// validBlockSize mirrors cryptsetup's VERITY_BLOCK_SIZE_OK: a power of two
// between 512 bytes and 512 KiB.
func validBlockSize(n uint32) bool {
	return n >= 512 && n <= 512*1024 && n&(n-1) == 0
}

func (p Params) checkFields() (algorithm, error) {
	alg, ok := lookupAlg(p.HashAlg)
	if !ok {
		return alg, fmt.Errorf("verity: hash algorithm %q not supported, want sha256, sha512, sha1, sha224 or sha384", p.HashAlg)
	}
	if !validBlockSize(p.DataBlockSize) {
		return alg, fmt.Errorf("verity: data block size %d is not a power of two between 512 and 524288", p.DataBlockSize)
	}
	if !validBlockSize(p.HashBlockSize) {
		return alg, fmt.Errorf("verity: hash block size %d is not a power of two between 512 and 524288", p.HashBlockSize)
	}
	if p.DataBlocks == 0 {
		return alg, fmt.Errorf("verity: 0 data blocks, want at least one %d-byte block", p.DataBlockSize)
	}
	if p.DataBlocks > (1<<63-1)/uint64(p.DataBlockSize) {
		return alg, fmt.Errorf("verity: %d data blocks of %d bytes overflow a 64-bit device size", p.DataBlocks, p.DataBlockSize)
	}
	if len(p.Salt) > MaxSaltSize {
		return alg, fmt.Errorf("verity: salt is %d bytes, want at most %d", len(p.Salt), MaxSaltSize)
	}
	return alg, nil
}

// DataBlocksFor is the number of data blocks veritysetup covers for a data
// device of size bytes: it rounds down, ignoring a partial last block (and a
// device smaller than one block gives 0, which veritysetup refuses).
func DataBlocksFor(size int64, p Params) uint64 {
	p = p.WithDefaults()
	if size <= 0 || !validBlockSize(p.DataBlockSize) {
		return 0
	}
	return uint64(size) / uint64(p.DataBlockSize)
}

// HashDeviceSize is the number of bytes Format writes for p: the superblock
// block and the tree. It is 0 when p (after WithDefaults) is invalid.
func HashDeviceSize(p Params) int64 {
	g, err := p.WithDefaults().geometry()
	if err != nil {
		return 0
	}
	return int64(1+g.treeBlocks()) * int64(g.hbs)
}

// geometry is the shape of a tree as cryptsetup's hash_levels computes it.
type geometry struct {
	alg        algorithm
	salt       []byte
	dbs, hbs   int
	dataBlocks uint64
	perBlock   int      // digests per hash block, a power of two
	stride     int      // bytes per digest slot: the digest size rounded up to a power of two
	levels     []uint64 // hash blocks per level, levels[0] covers the data
}

func (p Params) geometry() (geometry, error) {
	alg, err := p.checkFields()
	if err != nil {
		return geometry{}, err
	}
	g := geometry{
		alg: alg, salt: p.Salt, dbs: int(p.DataBlockSize), hbs: int(p.HashBlockSize),
		dataBlocks: p.DataBlocks,
		perBlock:   1 << (bits.Len(uint(int(p.HashBlockSize)/alg.size)) - 1),
		stride:     1 << bits.Len(uint(alg.size-1)),
	}
	shift := bits.TrailingZeros(uint(g.perBlock))
	// Level i has one digest per block of level i-1 (or per data block).
	for n := p.DataBlocks; n > 1; {
		n = (n-1)>>shift + 1
		g.levels = append(g.levels, n)
	}
	if len(g.levels) > maxLevels {
		return geometry{}, fmt.Errorf("verity: tree over %d data blocks needs %d levels, more than %d", p.DataBlocks, len(g.levels), maxLevels)
	}
	return g, nil
}

// treeBlocks is the number of hash blocks in all levels.
func (g geometry) treeBlocks() uint64 {
	var n uint64
	for _, l := range g.levels {
		n += l
	}
	return n
}

// levelStart is the first block of level i counted from the start of the
// tree; veritysetup stores the top level first.
func (g geometry) levelStart(i int) uint64 {
	var n uint64
	for _, l := range g.levels[i+1:] {
		n += l
	}
	return n
}
