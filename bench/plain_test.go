// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestBenchPlain is the plain-root row of TestBench alone, for work on it
// (issue 14, "plain ext4 root ≤ tiny-initramfs"): keel's small image and
// tiny-initramfs on the same ext4 disk, booted alternately BENCH_RUNS times
// (default 5), with keel's breakdown. It runs only with KEEL_BENCH=1 (make
// bench runs TestBench alone: select this one with -run) and asserts
// nothing about time: it prints the figures; the console logs stay in
// qemu-tests/.cache/logs/ for reading. BENCH_KEEL_CMDLINE is added to
// keel's command line only (for example "debug GODEBUG=inittrace=1": the
// kernel hands unknown options to /init as its environment).
// BENCH_ALT_INIT names another keel init binary (built as the Makefile
// does, from another commit) and BENCH_ALT_CMDLINE another command line
// (added to root=): with either, a third image joins the rotation as
// "keel-alt", so that two versions are compared boot by boot on a shared
// machine.
func TestBenchPlain(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("the benchmark boots VMs for minutes: run it with KEEL_BENCH=1")
	}
	runs := envCount(t, "BENCH_RUNS", 5)
	kernel, kver := vm.Kernel(t), vm.KVer(t)
	dir := t.TempDir()
	tools := buildKeel(t, dir)
	keelLine := strings.TrimSpace(plainCmdline + " " + os.Getenv("BENCH_KEEL_CMDLINE"))
	disk := plainDisk(t, dir)
	img := func(name string) string { return filepath.Join(dir, name+".img") }
	specs := []*bootSpec{
		{row: &Row{Name: "keel"}, cmdline: keelLine, check: wantKeel("plain")},
		{row: &Row{Name: "tiny-initramfs"}, cmdline: plainCmdline, check: wantPeer},
	}
	gens := []Generator{KeelSmall(tools, kver, img("keel")), Tiny(dir, kver, img("tiny-initramfs"))}
	if alt, altLine := os.Getenv("BENCH_ALT_INIT"), os.Getenv("BENCH_ALT_CMDLINE"); alt != "" || altLine != "" {
		if alt == "" {
			alt = tools.Init
		}
		altLine = strings.TrimSpace(plainCmdline + " " + altLine)
		specs = append(specs, &bootSpec{row: &Row{Name: "keel-alt"}, cmdline: altLine, check: wantKeel("plain")})
		gens = append(gens, KeelSmall(KeelTools{Mkinitrd: tools.Mkinitrd, Init: alt}, kver, img("keel-alt")))
	}
	for i, s := range specs {
		if _, size, err := gens[i].Time(1); err != nil {
			t.Fatal(err)
		} else {
			s.row.Image, s.row.Size, s.disk = gens[i].Out, size, disk
		}
	}
	bootAll(t, kernel, specs, runs)
	tiny := specs[1]
	for _, s := range specs {
		t.Logf("%s: %s in the initramfs (%s image)", s.row.Name, s.row.Boot.Spread(), MB(s.row.Size))
		if s == tiny {
			continue
		}
		for _, st := range KeelBreakdown(s.row.Name, s.boots).Steps {
			t.Logf("  %-70s %s", st.Name, st.Time.Spread())
		}
		var pairs []time.Duration
		for i := range s.boots {
			pairs = append(pairs, s.boots[i].InInitramfs()-tiny.boots[i].InInitramfs())
		}
		d := Summarize(pairs)
		t.Logf("  %s − tiny-initramfs, boot by boot: median %+.3f s (%+.3f to %+.3f); ratio of medians %s", s.row.Name,
			d.Median.Seconds(), d.Min.Seconds(), d.Max.Seconds(), Ratio(s.row.Boot.Median.Seconds(), tiny.row.Boot.Median.Seconds()))
	}
}
