// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/internal/build"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestBench is `make bench`: it builds keel's images and the peers', boots
// each against the same root disk, prints the tables and updates
// BENCHMARKS.md. It runs only with KEEL_BENCH=1, as root, with the peers
// installed (bench/install-peers.sh). BENCH_RUNS boots per image (default
// 5), BENCH_GEN_RUNS timed generations per image (default 3: dracut takes
// half a minute each),
// BENCH_REAL_RUNS repetitions of the real path (realpath_test.go, default 3).
func TestBench(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("the benchmark boots dozens of VMs for minutes: run it with make bench (KEEL_BENCH=1)")
	}
	runs, genRuns := envCount(t, "BENCH_RUNS", 5), envCount(t, "BENCH_GEN_RUNS", 3)
	kernel, kver := vm.Kernel(t), vm.KVer(t)
	dir := t.TempDir()
	tools := buildKeel(t, dir)
	r := Results{Runs: runs, GenRuns: genRuns, Date: time.Now(),
		Machine: DescribeMachine(kver, os.Getenv("KEEL_KVM") == "1")}
	if fi, err := os.Stat(tools.Init); err == nil {
		r.InitSize = fi.Size()
	}

	key := filepath.Join(dir, "bench.key")
	run(t, tools.Slotctl, "keygen", "--out", key)
	generate(t, &r, tools, dir, kver, key+".pub")
	ext4Disk, abDisk := disks(t, dir, tools, key)

	specs := []*bootSpec{
		{row: &r.KeelSmall, disk: ext4Disk, cmdline: plainCmdline, check: wantKeel("plain")},
		{row: &r.KeelFull, disk: abDisk, cmdline: "overlay=tmpfs", check: wantKeel("slot")},
	}
	for i := range r.Peers {
		specs = append(specs, &bootSpec{row: &r.Peers[i], disk: ext4Disk, cmdline: plainCmdline, check: wantPeer})
	}
	bootAll(t, kernel, specs, runs)
	r.Breakdowns = []Breakdown{KeelBreakdown(r.KeelSmall.Name, specs[0].boots), KeelBreakdown(r.KeelFull.Name, specs[1].boots)}
	realPath(t, &r, tools, kernel, kver, dir, key, envCount(t, "BENCH_REAL_RUNS", 3))
	r.Verity = verityThroughput(t)
	r.EtcMerge = etcMergeTime(t)
	ext4 := etcMergeTCG(t, tools.Mkinitrd, dir, "", "ext4")
	r.EtcMergeTCG, r.EtcWriteFloorTCG = ext4["Merge"], ext4["WriteFloor"]
	btrfs := etcMergeTCG(t, tools.Mkinitrd, dir, "", "btrfs")
	r.EtcMergeInPlaceTCG, r.EtcMergeBtrfsTCG = btrfs["MergeInPlace"], btrfs["Merge"]
	var err error
	if r.Unlock, err = RunUnlockBench(moduleRoot(t), dir, 3); err != nil {
		t.Fatal(err)
	}
	if r.Install, err = RunInstallBench(tools.Slotctl, dir, 3); err != nil {
		t.Fatal(err)
	}
	writeReport(t, r)
}

// plainCmdline is every plain-root boot's: tiny-initramfs takes /dev/NAME
// or UUID= only, so all take the partition's device name.
const plainCmdline = "root=/dev/vda1 ro"

// envCount reads a positive count from the environment.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// buildKeel builds init, mkinitrd, slotctl and the init's precompressed
// segment as the Makefile does.
func buildKeel(t *testing.T, dir string) KeelTools {
	t.Helper()
	tl, err := build.Keel(moduleRoot(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Segment == "" {
		t.Fatal("no zstd tool (Debian package zstd): keel's images would not be the ones make builds")
	}
	return KeelTools{Init: tl.Init, Mkinitrd: tl.Mkinitrd, Slotctl: tl.Slotctl}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command, failing t with its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// pkgVersion is a Debian package's installed version, for the table.
func pkgVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

// generate builds every image genRuns times and fills in the rows: name,
// form, image, generation time and size.
func generate(t *testing.T, r *Results, k KeelTools, dir, kver, pub string) {
	t.Helper()
	img := func(name string) string { return filepath.Join(dir, name+".img") }
	it, err := InitramfsTools(dir, kver, img("initramfs-tools"))
	if err != nil {
		t.Fatal(err)
	}
	dr, err := Dracut(dir, kver, img("dracut"))
	if err != nil {
		t.Fatal(err)
	}
	mods := strings.Join(VMModules(), " ")
	type job struct {
		row        *Row
		gen        Generator
		name, form string
	}
	r.Peers = make([]Row, 3)
	jobs := []job{
		{&r.KeelSmall, KeelSmall(k, kver, img("keel")), "keel",
			"mkinitrd --no-default-modules --modules " + strings.Join(VMModules(), ",") + "; shell; plain ext4 root"},
		{&r.KeelFull, KeelDemo(k, kver, img("keel-demo"), pub), "keel full path",
			"demo form (" + strings.Join(DemoModules(), ",") + ", shell, --trust); A/B slot chosen by boot counting, verity, tmpfs overlay, SquashFS"},
		{&r.Generic, KeelGeneric(k, kver, img("keel-generic"), pub), "keel generic", "mkinitrd defaults (kmod.DefaultModules), shell, --trust"},
		{&r.Peers[0], Tiny(dir, kver, img("tiny-initramfs")), "tiny-initramfs",
			"mktirfs --auto-modules=no --include-modules " + mods + " (tiny-initramfs-core " + pkgVersion("tiny-initramfs-core") + ")"},
		{&r.Peers[1], it, "initramfs-tools", "MODULES=dep + " + mods + ", zstd (initramfs-tools " + pkgVersion("initramfs-tools-core") + ")"},
		{&r.Peers[2], dr, "dracut", "--hostonly --add-drivers \"" + mods + "\" (dracut-core " + pkgVersion("dracut-core") + ")"},
	}
	for _, j := range jobs {
		s, size, err := j.gen.Time(r.GenRuns)
		if err != nil {
			t.Fatal(err)
		}
		*j.row = Row{Name: j.name, Form: j.form, Image: j.gen.Out, Gen: s, Size: size}
		t.Logf("%s: generated in %s (median of %d), %s", j.name, Seconds(s.Median), s.N, MB(size))
	}
}
