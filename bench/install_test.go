// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestInstallMarkdown(t *testing.T) {
	s := func(d time.Duration) Summary {
		return Summary{N: 3, Median: d, Min: d - time.Second/10, Max: d + time.Second/10}
	}
	ib := InstallBench{Runs: 3, Keel: s(3 * time.Second), Reference: s(4 * time.Second)}
	md := ib.Markdown()
	for _, want := range []string{"| 3.00 s (2.90–3.10) | 4.00 s (3.90–4.10) | ×0.75 |", "median of 3", "measured ×0.75: met."} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	ib.Keel = s(5 * time.Second)
	if tg := ib.Target(); tg.Met || tg.Measured != "×1.25" {
		t.Errorf("keel slower: target %+v", tg)
	}
	if tg := (InstallBench{Note: "not measured: no dd"}).Target(); tg.Met || tg.Measured != "n/a" {
		t.Errorf("nothing measured: target %+v", tg)
	}
}

// TestRunInstallBench runs the install bench once (KEEL_BENCH=1: it writes
// 2 GiB and builds slotctl).
func TestRunInstallBench(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("writes gigabytes: run with KEEL_BENCH=1")
	}
	dir := t.TempDir()
	slotctl, err := buildCommand(moduleRoot(t), dir, "slotctl")
	if err != nil {
		t.Fatal(err)
	}
	ib, err := RunInstallBench(slotctl, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ib.Note != "" {
		t.Skip(ib.Note)
	}
	if ib.Keel.N != 1 || ib.Reference.N != 1 || ib.Keel.Median <= 0 || ib.Reference.Median <= 0 {
		t.Errorf("keel %+v, reference %+v", ib.Keel, ib.Reference)
	}
	t.Log(ib.Markdown())
}
