// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"fmt"
	"testing"
)

func TestParseDevNumber(t *testing.T) {
	for in, want := range map[string][3]uint32{
		"254:1\n": {254, 1, 1}, "8:0": {8, 0, 1}, "4095:1048575\n": {4095, 1048575, 1},
		"": {}, "8": {}, "8:": {}, ":1": {}, "a:b": {}, "8:1:2": {}, "-1:2": {}, " 8:1": {}, "8:1\n\n": {}, "4294967296:0": {},
	} {
		maj, mnr, ok := ParseDevNumber(in)
		if got := [3]uint32{maj, mnr, map[bool]uint32{true: 1}[ok]}; got != want {
			t.Errorf("ParseDevNumber(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzParseDevNumber: whatever parses, fmt.Sscanf reads the same numbers from.
func FuzzParseDevNumber(f *testing.F) {
	for _, s := range []string{"254:1\n", "8:0", "x:y", "1:2:3", "007:08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		maj, mnr, ok := ParseDevNumber(s)
		if !ok {
			return
		}
		var a, b uint32
		if _, err := fmt.Sscanf(s, "%d:%d", &a, &b); err != nil || a != maj || b != mnr {
			t.Fatalf("ParseDevNumber(%q) = %d:%d, fmt.Sscanf gives %d:%d (%v)", s, maj, mnr, a, b, err)
		}
	})
}
