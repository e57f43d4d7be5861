// SPDX-License-Identifier: Apache-2.0

package slots

// Byte layout of the version 1 slot header. All integers are little-endian;
// strings and byte fields are zero-padded. docs/formats.md mirrors this table:
// change both together, and bump headerVersion on any incompatible change.
const (
	headerMagic   = "KEELSLOT"
	headerVersion = 1

	offMagic      = 0   // [8]byte  "KEELSLOT"
	offVersion    = 8   // uint32   headerVersion
	offHeaderSize = 12  // uint32   HeaderSize
	offImageID    = 16  // [64]byte printable ASCII, NUL-padded
	offCreated    = 80  // int64    seconds since the Unix epoch, UTC
	offImageSize  = 88  // uint64   SquashFS image size in bytes
	offHashAlg    = 96  // [32]byte verity hash algorithm, NUL-padded
	offDataBS     = 128 // uint32   verity data block size
	offHashBS     = 132 // uint32   verity hash block size
	offDataBlocks = 136 // uint64   verity data blocks
	offHashOffset = 144 // uint64   byte offset of the hash device in verity-X
	offHashSize   = 152 // uint64   hash device size (superblock + tree)
	offUUID       = 160 // [16]byte verity superblock UUID
	offSaltLen    = 176 // uint16   salt length
	offRootLen    = 178 // uint16   root hash length
	offReserved1  = 180 // [4]byte  zero
	offRollback   = 184 // uint64   rollback index (slotctl seal --rollback-index; 0 by default)
	offSalt       = 192 // [256]byte salt, zero-padded
	offRootHash   = 448 // [64]byte root hash, zero-padded
	offKeyID      = 512 // [32]byte sha256 of the signing public key, zero if unsigned
	offSignature  = 544 // [64]byte ed25519 signature of bytes [0, offSignature)
	offChecksum   = 608 // [32]byte sha256 of bytes [0, offChecksum)
	offReserved2  = 640 // zero up to HeaderSize

	imageIDMax  = offCreated - offImageID
	hashAlgMax  = offDataBS - offHashAlg
	saltMax     = offRootHash - offSalt
	rootHashMax = offKeyID - offRootHash
)
