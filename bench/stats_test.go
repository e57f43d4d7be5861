// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	s := time.Second
	tests := []struct {
		in   []time.Duration
		want Summary
	}{
		{nil, Summary{}},
		{[]time.Duration{3 * s}, Summary{1, 3 * s, 3 * s, 3 * s}},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, Summary{3, 3 * s, 1 * s, 5 * s}},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 9 * s}, Summary{4, 3 * s, 1 * s, 9 * s}},
	}
	for _, tt := range tests {
		if got := Summarize(tt.in); got != tt.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	ms := time.Millisecond
	tests := []struct{ got, want string }{
		{Summarize([]time.Duration{1200 * ms, 1310 * ms, 1230 * ms}).Spread(), "1.23 s (1.20–1.31)"},
		{Summarize([]time.Duration{700 * ms}).Spread(), "0.70 s"},
		{Summary{}.Spread(), "n/a"},
		{MB(7570717), "7.57 MB"},
		{Ratio(1, 4), "×0.25"},
		{Ratio(1, 0), "n/a"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
