// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/keel-boot/keel/verity
cpu: AMD EPYC
BenchmarkFormatFile-2           	       3	 187006711 ns/op	1435.39 MB/s
BenchmarkVeritysetupFormat-2    	       3	 420577383 ns/op	 638.24 MB/s	      12 B/op
BenchmarkOther	10	5 ns/op
PASS
`
	got, err := ParseGoBench(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["FormatFile"] != 1435.39 || got["VeritysetupFormat"] != 638.24 {
		t.Errorf("ParseGoBench = %v", got)
	}
	for _, bad := range []string{"PASS\n", "BenchmarkX-2 3 5 ns/op -1 MB/s\n", "BenchmarkX-2 3 5 ns/op x MB/s\n"} {
		if _, err := ParseGoBench(bad); err == nil || !strings.Contains(err.Error(), "go test -bench") {
			t.Errorf("ParseGoBench(%q): %v, want an error", bad, err)
		}
	}
}

func TestParseGoBenchTime(t *testing.T) {
	out := "goos: linux\nBenchmarkMerge-2   \t       5\t 153012345 ns/op\t  12.50 MB/s\nPASS\n"
	got, err := ParseGoBenchTime(out)
	if err != nil || got["Merge"] != 153012345 {
		t.Fatalf("ParseGoBenchTime = %v, %v", got, err)
	}
	if _, err := ParseGoBenchTime("PASS\n"); err == nil {
		t.Error("no benchmark line: no error")
	}
}

func TestParseGoBenchTimes(t *testing.T) {
	out := "BenchmarkMerge-2 \t 3\t 200000000 ns/op\nBenchmarkMerge-2 \t 3\t 100000000 ns/op\t 1.00 MB/s\nBenchmarkOther 1 7 ns/op\n"
	got, err := ParseGoBenchTimes(out)
	if err != nil || len(got["Merge"]) != 2 || got["Merge"][0] != 200000000 || got["Merge"][1] != 100000000 || got["Other"][0] != 7 {
		t.Fatalf("ParseGoBenchTimes = %v, %v", got, err)
	}
	last, err := ParseGoBenchTime(out)
	if err != nil || last["Merge"] != 100000000 {
		t.Errorf("ParseGoBenchTime = %v, %v: want the last line", last, err)
	}
	if _, err := ParseGoBenchTimes("BenchmarkX 1 -5 ns/op\n"); err == nil {
		t.Error("a negative time: no error")
	}
}
