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
func TestBenchPlain(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("the benchmark boots VMs for minutes: run it with KEEL_BENCH=1")
	}
	runs := envCount(t, "BENCH_RUNS", 5)
	kernel, kver := vm.Kernel(t), vm.KVer(t)
	dir := t.TempDir()
	tools := buildKeel(t, dir)
	var keel, tiny Row
	for _, j := range []struct {
		row  *Row
		gen  Generator
		name string
	}{
		{&keel, KeelSmall(tools, kver, filepath.Join(dir, "keel.img")), "keel"},
		{&tiny, Tiny(dir, kver, filepath.Join(dir, "tiny-initramfs.img")), "tiny-initramfs"},
	} {
		s, size, err := j.gen.Time(1)
		if err != nil {
			t.Fatal(err)
		}
		*j.row = Row{Name: j.name, Image: j.gen.Out, Gen: s, Size: size}
	}
	disk := plainDisk(t, dir)
	specs := []*bootSpec{
		{row: &keel, disk: disk, cmdline: strings.TrimSpace(plainCmdline + " " + os.Getenv("BENCH_KEEL_CMDLINE")), check: wantKeel("plain")},
		{row: &tiny, disk: disk, cmdline: plainCmdline, check: wantPeer},
	}
	bootAll(t, kernel, specs, runs)
	t.Logf("keel %s (%s), tiny-initramfs %s (%s): keel ÷ tiny %s", keel.Boot.Spread(), MB(keel.Size),
		tiny.Boot.Spread(), MB(tiny.Size), Ratio(keel.Boot.Median.Seconds(), tiny.Boot.Median.Seconds()))
	for _, s := range KeelBreakdown("keel", specs[0].boots).Steps {
		t.Logf("  %-70s %s", s.Name, s.Time.Spread())
	}
	var pairs []time.Duration
	for i := range specs[0].boots {
		pairs = append(pairs, specs[0].boots[i].InInitramfs()-specs[1].boots[i].InInitramfs())
	}
	d := Summarize(pairs)
	t.Logf("keel − tiny-initramfs, boot by boot: median %+.3f s (%+.3f to %+.3f)", d.Median.Seconds(), d.Min.Seconds(), d.Max.Seconds())
}
