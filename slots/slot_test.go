// SPDX-License-Identifier: Apache-2.0

package slots

import "testing"

func TestParseSlot(t *testing.T) {
	tests := []struct {
		in      string
		want    Slot
		wantErr bool
	}{
		{"a", SlotA, false},
		{"B", SlotB, false},
		{"A", SlotA, false},
		{"", "", true},
		{"c", "", true},
		{"ab", "", true},
	}
	for _, tt := range tests {
		got, err := ParseSlot(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSlot(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSlotLabels(t *testing.T) {
	tests := []struct {
		s                   Slot
		root, verity, other string
	}{
		{SlotA, "root-a", "verity-a", "b"},
		{SlotB, "root-b", "verity-b", "a"},
	}
	for _, tt := range tests {
		if got := tt.s.RootLabel(); got != tt.root {
			t.Errorf("%s.RootLabel() = %q, want %q", tt.s, got, tt.root)
		}
		if got := tt.s.VerityLabel(); got != tt.verity {
			t.Errorf("%s.VerityLabel() = %q, want %q", tt.s, got, tt.verity)
		}
		if got := tt.s.Other().String(); got != tt.other {
			t.Errorf("%s.Other() = %q, want %q", tt.s, got, tt.other)
		}
	}
}
