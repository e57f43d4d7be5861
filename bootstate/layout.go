// SPDX-License-Identifier: Apache-2.0

package bootstate

// Byte layout of the boot state record, version 2. All integers are
// little-endian. docs/formats.md ("Boot state") mirrors this table: change
// both together, and bump recordVersion on any incompatible change.
// Version 1 records (keel before the good-slot counting) are still read:
// see parseV1.
const (
	recordMagic   = "KEELBOOT"
	recordVersion = 2

	// RecordSize is the size of one boot state record.
	RecordSize = 512

	recOffMagic    = 0   // [8]byte  "KEELBOOT"
	recOffVersion  = 8   // uint32   recordVersion
	recOffSize     = 12  // uint32   RecordSize
	recOffSeq      = 16  // uint64   sequence number, +1 on every write
	recOffFloor    = 24  // uint64   rollback floor: highest rollback index of an image marked good
	recOffFlags    = 32  // uint8    bit 0: a data partition was used on an earlier boot
	recOffLastSlot = 33  // uint8    last slot marked good: 0 none, 'a' or 'b'
	recOffLastLen  = 34  // uint8    length of the last good image id
	recOffDataRuns = 35  // uint8    unfinished data mounts: boots in a row that began mounting the data partition and never finished with it
	recOffRsvd     = 36  // [4]byte  zero
	recOffLastID   = 40  // [64]byte image id of the last slot marked good, zero-padded
	recOffSlots    = 104 // two slot entries of slotEntrySize bytes: a, then b
	recOffRsvd2    = 472 // [8]byte  zero
	recOffChecksum = 480 // [32]byte sha256 of bytes [0, recOffChecksum)

	slotEntrySize  = 184
	entOffPrio     = 0 // uint8  priority, 0 = never boot
	entOffTries    = 1 // uint8  tries left (a slot not yet good)
	entOffFlags    = 2 // uint8  bit 0: good; other bits zero
	entOffLen      = 3 // uint8  reason length in bytes
	entOffUnconf   = 4 // uint8  boots of a good slot not confirmed since its last mark-good
	entOffRsvd     = 5 // [3]byte zero
	entOffReason   = 8 // [176]byte reason, UTF-8, zero-padded
	flagGood       = 1 << 0
	flagDataSeen   = 1 << 0
	lastIDMax      = recOffSlots - recOffLastID
	recordV1       = 1
	v1OffSlots     = 32
	v1EntrySize    = 224
	v1EntOffReason = 8

	// ReasonMax is the longest reason stored, in bytes; longer reasons are
	// cut at a rune boundary.
	ReasonMax = slotEntrySize - entOffReason
)

// The two copies of the record lie 64 KiB apart so that they never share a
// page, a 4 KiB sector or (on most flash) an erase block: an interrupted
// write of one cannot touch the other.
const (
	copy0Offset = 0
	copy1Offset = 64 << 10

	// BootStateMinSize is the smallest bootstate partition: both copies,
	// rounded up to 128 KiB.
	BootStateMinSize = 128 << 10

	// Label is the default GPT partition label of the boot state.
	Label = "bootstate"
)

// copyOffset is where record copy i (0 or 1) starts.
func copyOffset(i int) int64 {
	if i == 0 {
		return copy0Offset
	}
	return copy1Offset
}
