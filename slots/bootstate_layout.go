package slots

// Byte layout of the version 1 boot state record. All integers are
// little-endian. docs/formats.md ("Boot state") mirrors this table: change
// both together, and bump recordVersion on any incompatible change.
const (
	recordMagic   = "KEELBOOT"
	recordVersion = 1

	// RecordSize is the size of one boot state record.
	RecordSize = 512

	recOffMagic    = 0   // [8]byte  "KEELBOOT"
	recOffVersion  = 8   // uint32   recordVersion
	recOffSize     = 12  // uint32   RecordSize
	recOffSeq      = 16  // uint64   sequence number, +1 on every write
	recOffReserved = 24  // [8]byte  zero
	recOffSlots    = 32  // two slot entries of slotEntrySize bytes: a, then b
	recOffChecksum = 480 // [32]byte sha256 of bytes [0, recOffChecksum)

	slotEntrySize = 224
	entOffPrio    = 0 // uint8  priority, 0 = never boot
	entOffTries   = 1 // uint8  tries left
	entOffFlags   = 2 // uint8  bit 0: good; other bits zero
	entOffLen     = 3 // uint8  reason length in bytes
	entOffRsvd    = 4 // [4]byte zero
	entOffReason  = 8 // [216]byte reason, UTF-8, zero-padded

	flagGood = 1 << 0

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

	// BootStateLabel is the default GPT partition label of the boot state.
	BootStateLabel = "bootstate"
)

// copyOffset is where record copy i (0 or 1) starts.
func copyOffset(i int) int64 {
	if i == 0 {
		return copy0Offset
	}
	return copy1Offset
}
