// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MarshalRecord encodes s as one RecordSize-byte version 2 record with
// sequence number s.Seq. Reasons are cleaned (see CleanReason) on the way;
// an image id that MarkGood would refuse is dropped.
func MarshalRecord(s State) []byte {
	le := binary.LittleEndian
	b := make([]byte, RecordSize)
	copy(b[recOffMagic:], recordMagic)
	le.PutUint32(b[recOffVersion:], recordVersion)
	le.PutUint32(b[recOffSize:], RecordSize)
	le.PutUint64(b[recOffSeq:], s.Seq)
	le.PutUint64(b[recOffFloor:], s.RollbackFloor)
	if s.DataSeen {
		b[recOffFlags] = flagDataSeen
	}
	b[recOffDataRuns] = s.UnfinishedDataMounts
	if i, err := index(s.LastGood.Slot); err == nil && validLastID(s.LastGood.ImageID) {
		b[recOffLastSlot] = "ab"[i]
		b[recOffLastLen] = uint8(len(s.LastGood.ImageID))
		copy(b[recOffLastID:recOffSlots], s.LastGood.ImageID)
	}
	for i, x := range s.Slots {
		e := b[recOffSlots+i*slotEntrySize:][:slotEntrySize]
		reason := CleanReason(x.Reason)
		e[entOffPrio], e[entOffTries], e[entOffUnconf] = x.Priority, x.Tries, x.Unconfirmed
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

func validLastID(id string) bool {
	return id != "" && len(id) <= lastIDMax && CleanReason(id) == id
}

// ParseRecord decodes one record. It accepts exactly what MarshalRecord
// writes, and the version 1 records of earlier keel releases: any other
// byte (a torn write, garbage, a foreign format, another version) is an
// error naming what was wrong.
func ParseRecord(b []byte) (State, error) {
	v, err := checkRecordFrame(b)
	if err != nil {
		return State{}, err
	}
	if v == recordV1 {
		return parseV1(b)
	}
	le := binary.LittleEndian
	s := State{Seq: le.Uint64(b[recOffSeq:]), RollbackFloor: le.Uint64(b[recOffFloor:]), Initialised: true}
	if err := s.parseMachine(b); err != nil {
		return State{}, err
	}
	for i := range s.Slots {
		x, err := parseSlotEntry(b[recOffSlots+i*slotEntrySize:][:slotEntrySize], ReasonMax)
		if err != nil {
			return State{}, fmt.Errorf("boot state record: slot %s: %w", Slots()[i], err)
		}
		s.Slots[i] = x
	}
	return s, nil
}

// parseMachine decodes the fields that are not per slot.
func (s *State) parseMachine(b []byte) error {
	if f := b[recOffFlags]; f&^flagDataSeen != 0 {
		return fmt.Errorf("boot state record: flags %#02x, expected only bit 0 (data seen)", f)
	}
	s.DataSeen = b[recOffFlags]&flagDataSeen != 0
	s.UnfinishedDataMounts = b[recOffDataRuns]
	if err := recordZero("reserved bytes", b, recOffRsvd, recOffLastID); err != nil {
		return err
	}
	if err := recordZero("reserved bytes", b, recOffRsvd2, recOffChecksum); err != nil {
		return err
	}
	n := int(b[recOffLastLen])
	switch slot := b[recOffLastSlot]; {
	case slot == 0 && n == 0:
	case (slot == 'a' || slot == 'b') && n > 0 && n <= lastIDMax:
		id := string(b[recOffLastID : recOffLastID+n])
		if !validLastID(id) {
			return fmt.Errorf("boot state record: last good image id %q: expected printable UTF-8", id)
		}
		s.LastGood = LastGood{Slot: Slot(string(rune(slot))), ImageID: id}
	default:
		return fmt.Errorf("boot state record: last good slot %#02x with an image id of %d bytes, expected none, or a or b with 1 to %d bytes", slot, n, lastIDMax)
	}
	return recordZero("last good image id padding", b, recOffLastID+n, recOffSlots)
}

// parseV1 decodes a version 1 record: two 224-byte slot entries at byte
// 32, no machine fields.
func parseV1(b []byte) (State, error) {
	s := State{Seq: binary.LittleEndian.Uint64(b[recOffSeq:]), Initialised: true}
	if err := recordZero("reserved bytes", b, 24, v1OffSlots); err != nil {
		return State{}, err
	}
	for i := range s.Slots {
		e := b[v1OffSlots+i*v1EntrySize:][:v1EntrySize]
		if e[entOffUnconf] != 0 {
			return State{}, fmt.Errorf("boot state record: slot %s: reserved byte 4 is %#02x, expected zero", Slots()[i], e[entOffUnconf])
		}
		x, err := parseSlotEntry(e, v1EntrySize-v1EntOffReason)
		if err != nil {
			return State{}, fmt.Errorf("boot state record: slot %s: %w", Slots()[i], err)
		}
		x.Reason = CleanReason(x.Reason)
		s.Slots[i] = x
	}
	return s, nil
}

// checkRecordFrame checks size, magic, version and checksum, and returns
// the version.
func checkRecordFrame(b []byte) (uint32, error) {
	if len(b) != RecordSize {
		return 0, fmt.Errorf("boot state record: %d bytes, expected %d", len(b), RecordSize)
	}
	if string(b[recOffMagic:recOffVersion]) != recordMagic {
		return 0, fmt.Errorf("boot state record: magic %q, expected %q", b[recOffMagic:recOffVersion], recordMagic)
	}
	le := binary.LittleEndian
	v := le.Uint32(b[recOffVersion:])
	if v != recordVersion && v != recordV1 {
		return 0, fmt.Errorf("boot state record: version %d, this keel reads versions %d and %d", v, recordV1, recordVersion)
	}
	stored := b[recOffChecksum:RecordSize]
	if sum := sha256.Sum256(b[:recOffChecksum]); !bytes.Equal(stored, sum[:]) {
		return 0, fmt.Errorf("boot state record: checksum mismatch: stored %s…, computed %s…", short(stored), short(sum[:]))
	}
	if n := le.Uint32(b[recOffSize:]); n != RecordSize {
		return 0, fmt.Errorf("boot state record: record size field %d, expected %d", n, RecordSize)
	}
	return v, nil
}

// parseSlotEntry decodes one slot entry of a framed record; reasonMax is
// the room for the reason in this version.
func parseSlotEntry(e []byte, reasonMax int) (SlotState, error) {
	if f := e[entOffFlags]; f&^flagGood != 0 {
		return SlotState{}, fmt.Errorf("flags %#02x, expected only bit 0 (good)", f)
	}
	if err := recordZero("reserved bytes", e, entOffRsvd, entOffReason); err != nil {
		return SlotState{}, err
	}
	n := int(e[entOffLen])
	if n > reasonMax {
		return SlotState{}, fmt.Errorf("reason length %d, expected at most %d", n, reasonMax)
	}
	if err := recordZero("reason padding", e, entOffReason+n, len(e)); err != nil {
		return SlotState{}, err
	}
	reason := string(e[entOffReason : entOffReason+n])
	if !utf8Printable(reason) {
		return SlotState{}, fmt.Errorf("reason %q: expected printable UTF-8", reason)
	}
	x := SlotState{
		Priority:    e[entOffPrio],
		Tries:       e[entOffTries],
		Good:        e[entOffFlags]&flagGood != 0,
		Unconfirmed: e[entOffUnconf],
		Reason:      reason,
	}
	if !x.Good && x.Unconfirmed != 0 {
		return SlotState{}, fmt.Errorf("%d unconfirmed boots on a slot that is not good, expected 0", x.Unconfirmed)
	}
	return x, nil
}

// utf8Printable is CleanReason's invariant without its length limit:
// valid UTF-8 without control characters.
func utf8Printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

func recordZero(name string, b []byte, from, to int) error {
	for i := from; i < to; i++ {
		if b[i] != 0 {
			return fmt.Errorf("%s at offset %d: found %#02x, expected zero", name, i, b[i])
		}
	}
	return nil
}

// short is the first bytes of a checksum, in hex, for messages.
func short(b []byte) string { return fmt.Sprintf("%x", b[:4]) }
