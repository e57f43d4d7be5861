package slots

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// MarshalRecord encodes s as one RecordSize-byte record with sequence
// number s.Seq. Reasons are cleaned (see CleanReason) on the way.
func MarshalRecord(s State) []byte {
	le := binary.LittleEndian
	b := make([]byte, RecordSize)
	copy(b[recOffMagic:], recordMagic)
	le.PutUint32(b[recOffVersion:], recordVersion)
	le.PutUint32(b[recOffSize:], RecordSize)
	le.PutUint64(b[recOffSeq:], s.Seq)
	for i, x := range s.Slots {
		e := b[recOffSlots+i*slotEntrySize:][:slotEntrySize]
		reason := CleanReason(x.Reason)
		e[entOffPrio], e[entOffTries] = x.Priority, x.Tries
		if x.Good {
			e[entOffFlags] = flagGood
		}
		e[entOffLen] = uint8(len(reason))
		copy(e[entOffReason:], reason)
	}
	sum := sha256.Sum256(b[:recOffChecksum])
	copy(b[recOffChecksum:], sum[:])
	return b
}

// ParseRecord decodes one record. It accepts exactly what MarshalRecord
// writes: any other byte (a torn write, garbage, a foreign format, another
// version) is an error naming what was wrong.
func ParseRecord(b []byte) (State, error) {
	if err := checkRecordFrame(b); err != nil {
		return State{}, err
	}
	s := State{Seq: binary.LittleEndian.Uint64(b[recOffSeq:]), Initialised: true}
	for i := range s.Slots {
		x, err := parseSlotEntry(b[recOffSlots+i*slotEntrySize:][:slotEntrySize])
		if err != nil {
			return State{}, fmt.Errorf("boot state record: slot %s: %w", Slots()[i], err)
		}
		s.Slots[i] = x
	}
	return s, nil
}

// checkRecordFrame checks size, magic, version, checksum and the reserved
// bytes.
func checkRecordFrame(b []byte) error {
	if len(b) != RecordSize {
		return fmt.Errorf("boot state record: %d bytes, expected %d", len(b), RecordSize)
	}
	if string(b[recOffMagic:recOffVersion]) != recordMagic {
		return fmt.Errorf("boot state record: magic %q, expected %q", b[recOffMagic:recOffVersion], recordMagic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[recOffVersion:]); v != recordVersion {
		return fmt.Errorf("boot state record: version %d, this keel reads version %d", v, recordVersion)
	}
	stored := b[recOffChecksum:RecordSize]
	if sum := sha256.Sum256(b[:recOffChecksum]); !bytes.Equal(stored, sum[:]) {
		return fmt.Errorf("boot state record: checksum mismatch: stored %s…, computed %s…", short(stored), short(sum[:]))
	}
	if n := le.Uint32(b[recOffSize:]); n != RecordSize {
		return fmt.Errorf("boot state record: record size field %d, expected %d", n, RecordSize)
	}
	return recordZero("reserved bytes", b, recOffReserved, recOffSlots)
}

// parseSlotEntry decodes one slot entry of a framed record.
func parseSlotEntry(e []byte) (SlotState, error) {
	if f := e[entOffFlags]; f&^flagGood != 0 {
		return SlotState{}, fmt.Errorf("flags %#02x, expected only bit 0 (good)", f)
	}
	if err := recordZero("reserved bytes", e, entOffRsvd, entOffReason); err != nil {
		return SlotState{}, err
	}
	n := int(e[entOffLen])
	if n > ReasonMax {
		return SlotState{}, fmt.Errorf("reason length %d, expected at most %d", n, ReasonMax)
	}
	if err := recordZero("reason padding", e, entOffReason+n, slotEntrySize); err != nil {
		return SlotState{}, err
	}
	reason := string(e[entOffReason : entOffReason+n])
	if CleanReason(reason) != reason {
		return SlotState{}, fmt.Errorf("reason %q: expected printable UTF-8", reason)
	}
	return SlotState{
		Priority: e[entOffPrio],
		Tries:    e[entOffTries],
		Good:     e[entOffFlags]&flagGood != 0,
		Reason:   reason,
	}, nil
}

func recordZero(name string, b []byte, from, to int) error {
	for i := from; i < to; i++ {
		if b[i] != 0 {
			return fmt.Errorf("%s at offset %d: found %#02x, expected zero", name, i, b[i])
		}
	}
	return nil
}
