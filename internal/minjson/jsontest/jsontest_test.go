// SPDX-License-Identifier: Apache-2.0

package jsontest

import "testing"

func TestPlainKeys(t *testing.T) {
	for doc, want := range map[string]bool{
		`{}`: true,
		`{"a_1":{"b":[{"c":1},{"c":2}]},"d":"A"}`: true,
		`{"a":{"a":1}}`:              true,
		`["A",{"x":"Y"}]`:            true,
		`{"a":1,"a":2}`:              false,
		`{"a":{"x":1,"b":{},"x":2}}`: false,
		`{"Mode":"x"}`:               false,
		`[{"ok":1},{"sſ":1}]`:        false,
		`{"a":[1,{"b":2}],"B":1}`:    false,
		`{"a":`:                      true,
	} {
		if got := PlainKeys([]byte(doc)); got != want {
			t.Errorf("PlainKeys(%s) = %v", doc, got)
		}
	}
}
