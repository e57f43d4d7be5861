// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/report"
)

func sampleResults() Results {
	s := func(ms ...int) Summary {
		var ds []time.Duration
		for _, m := range ms {
			ds = append(ds, time.Duration(m)*time.Millisecond)
		}
		return Summarize(ds)
	}
	boots := []Boot{
		{RunInit: 2 * time.Second, KeelStart: 2200 * time.Millisecond, KeelSwitch: 3 * time.Second, RootInit: 3100 * time.Millisecond,
			Report: &report.Report{Phases: []report.Phase{{Name: "devices", Ms: 400}, {Name: "root", Ms: 300}}}},
		{RunInit: 2 * time.Second, KeelStart: 2300 * time.Millisecond, KeelSwitch: 3 * time.Second, RootInit: 3200 * time.Millisecond,
			Report: &report.Report{Phases: []report.Phase{{Name: "devices", Ms: 500}, {Name: "root", Ms: 200}}}},
	}
	return Results{
		KeelSmall: Row{Name: "keel", Gen: s(100), Size: 1_900_000, Boot: s(900, 950, 1000), RunInit: s(2000)},
		KeelFull:  Row{Name: "keel full path", Gen: s(150), Size: 4_000_000, Boot: s(1400), RunInit: s(2100)},
		Peers: []Row{
			{Name: "tiny-initramfs", Gen: s(1000), Size: 690_000, Boot: s(450), RunInit: s(1700)},
			{Name: "dracut", Gen: s(15000), Size: 17_000_000, Boot: s(5600), RunInit: s(3000)},
		},
		Generic:     Row{Name: "keel generic", Gen: s(300), Size: 7_000_000},
		InitSize:    4_128_930,
		Verity:      Throughput{Keel: 1400, Veritysetup: 600},
		EtcMergeTCG: s(700, 800, 900), EtcWriteFloorTCG: s(600),
		EtcMergeInPlaceTCG: s(250), EtcMergeBtrfsTCG: s(500),
		Breakdowns: []Breakdown{KeelBreakdown("keel", boots)},
		Runs:       3, GenRuns: 1,
		Date: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC),
	}
}

func TestTargets(t *testing.T) {
	got := map[string]bool{}
	for _, tg := range sampleResults().Targets() {
		got[tg.Goal+" "+tg.Measured] = tg.Met
	}
	want := map[string]bool{"≤ 1.0 s 0.95 s": true, "≤ 1.5 s 1.40 s": true, "≤ 0.2 s 0.10 s": true, "≤ 2 MiB 1.81 MiB": true, "≤ 4 MiB 3.81 MiB": true, "≤ 3 MB 4.13 MB": false, "≥ ×1.00 ×2.33": true, "≤ 0.3 s 0.25 s": true, "≤ 0.3 s 0.80 s": false}
	for goal, met := range want {
		if got[goal] != met {
			t.Errorf("target %s: met %v, want %v", goal, got[goal], met)
		}
	}
	var zero Results
	for _, tg := range zero.Targets() {
		if tg.Met {
			t.Errorf("target %q met with nothing measured", tg.What)
		}
	}
}

func TestCompare(t *testing.T) {
	cs := sampleResults().Compare()
	if len(cs) != 2 || cs[0].Peer != "tiny-initramfs" || cs[0].Boot != "×2.11" || cs[1].Boot != "×0.17" || cs[1].Gen != "×0.01" {
		t.Errorf("Compare = %+v", cs)
	}
	if cs[1].BootFactor < 5.8 || cs[1].BootFactor > 5.9 {
		t.Errorf("dracut boot factor %v, want 5600/950", cs[1].BootFactor)
	}
}

func TestKeelBreakdown(t *testing.T) {
	bd := sampleResults().Breakdowns[0]
	var names []string
	for _, s := range bd.Steps {
		names = append(names, s.Name)
	}
	if len(bd.Steps) != 4 || !strings.Contains(names[1], "devices") || !strings.Contains(names[2], "root") {
		t.Fatalf("steps %q", names)
	}
	if bd.Steps[0].Time.Median != 250*time.Millisecond || bd.Steps[1].Time.Median != 450*time.Millisecond || bd.Steps[3].Time.Median != 150*time.Millisecond {
		t.Errorf("steps %+v", bd.Steps)
	}
}

func TestRender(t *testing.T) {
	r := sampleResults()
	md := r.Markdown()
	for _, want := range []string{"| keel | ", "| dracut | ", "17.00 MB", "0.95 s (0.90–1.00)", "| tiny-initramfs | ×2.11 |", "| init binary, stripped | ≤ 3 MB | 4.13 MB | missed |", "1400 MB/s", "2026-11-23 13:00 UTC", "median (min–max) of 3 runs: on btrfs", "(`BenchmarkMergeInPlace`, the snapshot included) 0.25 s, copying (`BenchmarkMerge`) 0.50 s; on ext4, copying 0.80 s (0.70–0.90)", "nothing else (`BenchmarkWriteFloor`) 0.60 s", "| /etc merge of a realistic update, in the guest, btrfs data partition (the default: in place in a snapshot; issue 11) | ≤ 0.3 s | 0.25 s | met |", "| /etc merge of the same update, in the guest, ext4 data partition (copying; issue 11) | ≤ 0.3 s | 0.80 s | missed |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "vs dracut") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
}

func TestUpdateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := UpdateFile(path, "table 1"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	hand := strings.Replace(string(b), endMarker, endMarker+"\n\n## Analysis by hand\n", 1)
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateFile(path, "table 2\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	if !strings.Contains(got, beginMarker+"\ntable 2\n"+endMarker) || strings.Contains(got, "table 1") || !strings.Contains(got, "## Analysis by hand") {
		t.Errorf("after the second update:\n%s", got)
	}
	if err := os.WriteFile(path, []byte("# hand-written only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateFile(path, "x"); err == nil || !strings.Contains(err.Error(), "no ") {
		t.Errorf("file without markers: %v, want an error", err)
	}
}
