// SPDX-License-Identifier: Apache-2.0

// Package slots knows keel's A/B slot layout and the signed slot header that
// sits at the start of each slot's verity partition.
//
// Each slot X has two GPT partitions: root-X holds the SquashFS image (the
// dm-verity data device) and verity-X holds a HeaderSize-byte keel header
// followed, at HashOffset, by a hash device exactly as `veritysetup format`
// writes it, so that
//
//	veritysetup verify root.img verity.img ROOTHASH --hash-offset=4096
//
// accepts it. The header carries the root hash, the verity parameters and an
// optional ed25519 signature; docs/formats.md describes it byte by byte.
//
// Boot counting (the A/B state machine) lives in other files of this package.
package slots

import (
	"fmt"
	"strings"
)

const (
	// HeaderSize is the size of the slot header at offset 0 of verity-X.
	HeaderSize = 4096
	// HashOffset is where the veritysetup-format hash device starts in
	// verity-X (veritysetup's --hash-offset).
	HashOffset = 4096
)

// Slot names one of the two A/B slots.
type Slot string

// The two slots.
const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Slots lists every slot in a fixed order.
func Slots() []Slot { return []Slot{SlotA, SlotB} }

// ParseSlot accepts "a" or "b" in any case (the kernel command line says
// slot=A as often as slot=a).
func ParseSlot(s string) (Slot, error) {
	switch strings.ToLower(s) {
	case "a":
		return SlotA, nil
	case "b":
		return SlotB, nil
	}
	return "", fmt.Errorf("slot %q: expected a or b", s)
}

// Other returns the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// RootLabel is the default GPT partition label of the slot's SquashFS image.
func (s Slot) RootLabel() string { return "root-" + string(s) }

// VerityLabel is the default GPT partition label of the slot's header and
// hash tree.
func (s Slot) VerityLabel() string { return "verity-" + string(s) }

// String returns the slot name, "a" or "b".
func (s Slot) String() string { return string(s) }
