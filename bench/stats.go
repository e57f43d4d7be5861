// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"slices"
	"time"
)

// Summary is what the tables print of repeated measurements: the median,
// which one slow outlier under TCG does not move, and the spread.
type Summary struct {
	N                int
	Median, Min, Max time.Duration
}

// Summarize returns the median, minimum and maximum of ds (the mean of the
// two middle values for an even count). The zero Summary means no samples.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{N: n, Median: med, Min: s[0], Max: s[n-1]}
}

// Seconds formats d as seconds with two decimals, the resolution that
// means anything under TCG.
func Seconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// Spread formats the median with the range: "1.23 s (1.20–1.31)".
func (s Summary) Spread() string {
	if s.N == 0 {
		return "n/a"
	}
	if s.N == 1 {
		return Seconds(s.Median)
	}
	return fmt.Sprintf("%s (%.2f–%.2f)", Seconds(s.Median), s.Min.Seconds(), s.Max.Seconds())
}

// MB formats a byte count in decimal megabytes, as the table does.
func MB(n int64) string {
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}

// Ratio formats a/b as "×0.42"; "n/a" when b is zero.
func Ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "n/a"
	}
	return fmt.Sprintf("×%.2f", a/b)
}
