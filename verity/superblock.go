// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// signature opens every veritysetup superblock.
const signature = "verity\x00\x00"

// Superblock is cryptsetup's struct verity_sb, the 512 bytes at the start of
// a hash device made by `veritysetup format`. All integers are little endian.
type Superblock struct {
	Version       uint32 // superblock version, always 1
	HashType      uint32 // 1 = normal (salt first); 0 = Chrome OS (not supported)
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// Offsets of struct verity_sb's fields.
const (
	offVersion   = 8
	offHashType  = 12
	offUUID      = 16
	offAlgorithm = 32
	algorithmLen = 32
	offDataBS    = 64
	offHashBS    = 68
	offBlocks    = 72
	offSaltSize  = 80
	offSalt      = 88
)

// ParseSuperblock decodes and checks the superblock at the start of b. It
// accepts what veritysetup accepts for format version 1 with a supported
// algorithm, and nothing else.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < superblockSize {
		return nil, fmt.Errorf("verity superblock: %d bytes, want at least %d", len(b), superblockSize)
	}
	if string(b[:8]) != signature {
		return nil, fmt.Errorf("verity superblock: signature %q, want %q", b[:8], signature)
	}
	le := binary.LittleEndian
	s := &Superblock{
		Version:       le.Uint32(b[offVersion:]),
		HashType:      le.Uint32(b[offHashType:]),
		DataBlockSize: le.Uint32(b[offDataBS:]),
		HashBlockSize: le.Uint32(b[offHashBS:]),
		DataBlocks:    le.Uint64(b[offBlocks:]),
	}
	copy(s.UUID[:], b[offUUID:])
	alg := b[offAlgorithm : offAlgorithm+algorithmLen]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	s.Algorithm = string(alg)
	if s.Version != 1 {
		return nil, fmt.Errorf("verity superblock: version %d, want 1", s.Version)
	}
	if s.HashType != 1 {
		return nil, fmt.Errorf("verity superblock: hash type %d, want 1 (type 0 is the Chrome OS format, not supported)", s.HashType)
	}
	saltSize := int(le.Uint16(b[offSaltSize:]))
	if saltSize > MaxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt size %d, want at most %d", saltSize, MaxSaltSize)
	}
	s.Salt = bytes.Clone(b[offSalt : offSalt+saltSize])
	if err := s.Params().Validate(); err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	return s, nil
}

// Params are the tree parameters the superblock records.
func (s *Superblock) Params() Params {
	return Params{
		HashAlg:       s.Algorithm,
		DataBlockSize: s.DataBlockSize,
		HashBlockSize: s.HashBlockSize,
		DataBlocks:    s.DataBlocks,
		Salt:          bytes.Clone(s.Salt),
		UUID:          s.UUID,
	}
}

// NewSuperblock is the superblock veritysetup writes for p (after defaults).
func NewSuperblock(p Params) (*Superblock, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Superblock{
		Version: 1, HashType: 1, UUID: p.UUID, Algorithm: p.HashAlg,
		DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize,
		DataBlocks: p.DataBlocks, Salt: bytes.Clone(p.Salt),
	}, nil
}

// MarshalBinary encodes s as the 512 bytes veritysetup writes.
func (s *Superblock) MarshalBinary() ([]byte, error) {
	if len(s.Algorithm) >= algorithmLen {
		return nil, fmt.Errorf("verity superblock: algorithm name %q longer than %d bytes", s.Algorithm, algorithmLen-1)
	}
	if len(s.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt is %d bytes, want at most %d", len(s.Salt), MaxSaltSize)
	}
	b := make([]byte, superblockSize)
	le := binary.LittleEndian
	copy(b, signature)
	le.PutUint32(b[offVersion:], s.Version)
	le.PutUint32(b[offHashType:], s.HashType)
	copy(b[offUUID:], s.UUID[:])
	copy(b[offAlgorithm:], s.Algorithm)
	le.PutUint32(b[offDataBS:], s.DataBlockSize)
	le.PutUint32(b[offHashBS:], s.HashBlockSize)
	le.PutUint64(b[offBlocks:], s.DataBlocks)
	le.PutUint16(b[offSaltSize:], uint16(len(s.Salt)))
	copy(b[offSalt:], s.Salt)
	return b, nil
}
