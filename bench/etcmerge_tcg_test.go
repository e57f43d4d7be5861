// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// etcMergeTCGRuns is how many times the guest runs BenchmarkMerge (each a
// mean of etcMergeTCGIters merges); the table shows their median.
const (
	etcMergeTCGRuns  = 5
	etcMergeTCGIters = 3
)

// TestBenchEtcMergeTCG is the /etc merge part of `make bench` alone
// (KEEL_BENCH=1): the figure it logs is the one TestBench puts in
// BENCHMARKS.md. With KEEL_BENCH_ETC_PROFILE=FILE the guest's CPU profile
// of the runs is written to FILE (go tool pprof; ext4 only). With
// KEEL_BENCH_ETC_FS=btrfs the trees are on btrfs and BenchmarkMergeInPlace
// (a snapshot of the old upper, edited) runs too. KEEL_BENCH_ETC_ARGS
// replaces the test binary's arguments in the guest (one a line or space
// separated, e.g. another -test.run), its console left for reading.
func TestBenchEtcMergeTCG(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("boots a VM that merges /etc for minutes: run it with KEEL_BENCH=1")
	}
	dir := t.TempDir()
	s := etcMergeTCG(t, buildKeel(t, dir).Mkinitrd, dir, os.Getenv("KEEL_BENCH_ETC_PROFILE"), etcMergeFS())
	for _, name := range []string{"Merge", "WriteFloor", "MergeInPlace"} {
		if r, ok := s[name]; ok {
			t.Logf("Benchmark%s in the guest: %s over %d runs", name, r.Spread(), r.N)
		}
	}
}

// etcMergeTCG runs etcmerge's BenchmarkMerge inside the test kernel under
// QEMU (TCG unless KEEL_KVM=1), as qemu-tests' TestPackageTestsInVM runs
// package tests: the test binary and qemu-tests/pkgrun as /init in an
// initramfs, the trees on an fstype (ext4 or btrfs: the data partition's
// kinds of file system) file system on a virtio disk, not on the
// initramfs' tmpfs. It returns each benchmark's runs by name: Merge (the
// copying merge), WriteFloor (the files any copying merge must write,
// written alone) and, on btrfs, MergeInPlace (in a snapshot of the old
// upper). A profile path, when not empty, receives the guest's CPU profile.
func etcMergeTCG(t *testing.T, mkinitrd, dir, profile, fstype string) map[string]Summary {
	t.Helper()
	root := moduleRoot(t)
	work := filepath.Join(dir, "etcmerge-tcg-"+fstype)
	pd := filepath.Join(work, "pkgs", "etcmerge")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CGO_ENABLED", "0") // static: the initramfs has no libc
	run(t, "go", "-C", root, "test", "-c", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(pd, "etcmerge.test"), "./etcmerge")
	runner := filepath.Join(work, "pkgrun")
	run(t, "go", "-C", root, "build", "-trimpath", "-ldflags=-s -w", "-o", runner, "./qemu-tests/pkgrun")
	args := strings.Join([]string{"-test.run=^$", "-test.bench=^Benchmark(Merge|WriteFloor|MergeInPlace)$",
		"-test.benchtime=" + strconv.Itoa(etcMergeTCGIters) + "x", "-test.count=" + strconv.Itoa(etcMergeTCGRuns)}, "\n")
	if profile != "" {
		args += "\n-test.cpuprofile=/scratch/etcmerge/cpu.prof"
	}
	if a := os.Getenv("KEEL_BENCH_ETC_ARGS"); a != "" {
		args = a
	}
	for name, content := range map[string]string{"args": args + "\n", "scratch": "/dev/vda " + fstype + "\n"} {
		if err := os.WriteFile(filepath.Join(pd, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(work, "initrd.img")
	run(t, mkinitrd, "--out", img, "--kver", vm.KVer(t), "--init", runner, "--shell", "none",
		"--no-default-modules", "--modules", "virtio_pci,virtio_blk,"+fstype, "--add", filepath.Dir(pd)+":/pkgs")
	disk := scratchFS(t, filepath.Join(work, "scratch."+fstype), fstype)

	// loglevel=1: a kernel warning (under a loaded host, "hrtimer:
	// interrupt took …") must not split a benchmark line on the console.
	m := vm.Start(t, vm.Options{Initrd: img, Disks: []string{disk}, Cmdline: "loglevel=1", Timeout: 10 * time.Minute})
	m.Expect("KEEL-PKGTEST: done")
	m.ExpectPowerOff()
	out := m.Output()
	if profile != "" && fstype == "btrfs" {
		t.Logf("the profile is on the guest's btrfs, not fetched (debugfs reads ext4 only)")
	} else if profile != "" {
		run(t, "debugfs", "-R", "dump /cpu.prof "+profile, disk)
	}
	if os.Getenv("KEEL_BENCH_ETC_ARGS") != "" {
		t.Logf("console: %s", m.LogPath())
		return nil
	}
	if !strings.Contains(out, "KEEL-PKGTEST: etcmerge exit 0") {
		t.Fatalf("the etcmerge benchmarks failed in the VM (console: %s)", m.LogPath())
	}
	runs, err := ParseGoBenchTimes(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Merge", "WriteFloor"}
	if fstype == "btrfs" { // in place needs a snapshot
		want = append(want, "MergeInPlace")
	}
	res := map[string]Summary{}
	for _, name := range want {
		if len(runs[name]) != etcMergeTCGRuns {
			t.Fatalf("Benchmark%s in the VM on %s: %d results, want %d (console: %s)", name, fstype, len(runs[name]), etcMergeTCGRuns, m.LogPath())
		}
		res[name] = Summarize(runs[name])
	}
	return res
}

// etcMergeFS is the file system the guest merges on: ext4, or btrfs (the
// data partition's default, docs/data.md) with KEEL_BENCH_ETC_FS=btrfs.
func etcMergeFS() string {
	if os.Getenv("KEEL_BENCH_ETC_FS") == "btrfs" {
		return "btrfs"
	}
	return "ext4"
}

// scratchFS makes an empty 512 MiB file system image of fstype (ext4 or
// btrfs). ext4's inode tables and journal are initialised, as on a data
// partition in use for a while: with mkfs' lazy defaults the guest's
// ext4lazyinit thread would zero them while the benchmark runs.
func scratchFS(t *testing.T, path, fstype string) string {
	t.Helper()
	f, err := os.Create(path)
	if err == nil {
		err = f.Truncate(512 << 20)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if fstype == "btrfs" {
		run(t, "mkfs.btrfs", "-q", "-f", path)
		return path
	}
	run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", path)
	return path
}
