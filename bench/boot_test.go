// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// disks makes the two root disks from one root tree: a 64 MiB ext4 file
// system in a GPT partition for the plain boots, and its SquashFS sealed
// into both slots of an A/B disk for keel's full path. Slot a is marked
// good, the steady state after an update was accepted, so every boot
// selects it the same way and writes nothing to the disk.
func disks(t *testing.T, dir string, k KeelTools, key string) (ext4Disk, abDisk string) {
	t.Helper()
	ext4Disk = plainDisk(t, dir)
	sq := vm.MkSquashfs(t, filepath.Join(dir, "root"))
	ver := filepath.Join(dir, "verity.img")
	run(t, k.Slotctl, "seal", "--image", sq, "--key", key, "--image-id", "bench-root", "--out", ver)
	fi, err := os.Stat(sq)
	if err != nil {
		t.Fatal(err)
	}
	rootMiB := int(fi.Size()>>20) + 2
	var parts []vm.Part
	for _, s := range []string{"a", "b"} {
		parts = append(parts, vm.Part{Name: "root-" + s, SizeMiB: rootMiB, Content: sq}, vm.Part{Name: "verity-" + s, SizeMiB: 1, Content: ver})
	}
	abDisk = vm.NewDisk(t, filepath.Join(dir, "ab-disk.img"), append(parts, vm.Part{Name: "bootstate", SizeMiB: 1})).Path
	run(t, k.Slotctl, "mark-good", "a", "--disk", abDisk)
	return ext4Disk, abDisk
}

// plainDisk writes the benchmark's root tree to dir/root and makes the
// plain boots' disk from it: a 64 MiB ext4 file system in a GPT partition.
func plainDisk(t *testing.T, dir string) string {
	t.Helper()
	tree := filepath.Join(dir, "root")
	if err := WriteRootTree(tree, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	fs := vm.MkExt4(t, tree, 64, "benchroot")
	return vm.NewDisk(t, filepath.Join(dir, "ext4-disk.img"), []vm.Part{{Name: "benchroot", SizeMiB: 64, Content: fs}}).Path
}

// bootSpec is one image to boot and what its boots measured.
type bootSpec struct {
	row     *Row
	disk    string
	cmdline string
	check   func(Boot) error
	boots   []Boot
}

// bootAll boots every image runs times, one VM at a time, round-robin so
// that a slow spell of the host touches every image alike.
func bootAll(t *testing.T, kernel string, specs []*bootSpec, runs int) {
	t.Helper()
	for i := range runs {
		for _, s := range specs {
			name := fmt.Sprintf("%s/%d", s.row.Name, i+1)
			if !t.Run(name, func(t *testing.T) { s.boots = append(s.boots, bootOnce(t, kernel, s)) }) {
				t.FailNow()
			}
		}
	}
	for _, s := range specs {
		var in, at []time.Duration
		for _, b := range s.boots {
			in, at = append(in, b.InInitramfs()), append(at, b.RunInit)
		}
		s.row.Boot, s.row.RunInit = Summarize(in), Summarize(at)
	}
}

func bootOnce(t *testing.T, kernel string, s *bootSpec) Boot {
	m := vm.Start(t, vm.Options{Kernel: kernel, Initrd: s.row.Image, Disks: []string{s.disk}, Cmdline: "printk.time=1 " + s.cmdline})
	m.Expect(DoneLine)
	m.ExpectPowerOff()
	b, err := ParseBoot(m.Output())
	if err == nil {
		err = s.check(b)
	}
	if err != nil {
		t.Fatalf("%s: %v (console log: %s)", s.row.Name, err, m.LogPath())
	}
	t.Logf("%s: %s in the initramfs (Run /init at %s)", s.row.Name, Seconds(b.InInitramfs()), Seconds(b.RunInit))
	return b
}

// wantKeel checks that keel booted in the mode measured: a benchmark of a
// boot that went another way (a fallback, an unverified root) is no figure.
func wantKeel(mode string) func(Boot) error {
	return func(b Boot) error {
		r := b.Report
		switch {
		case r == nil:
			return fmt.Errorf("no boot.json printed by the root's init")
		case r.Mode != mode:
			return fmt.Errorf("boot.json mode %q, want %q", r.Mode, mode)
		case mode == "slot" && (r.Slot != "a" || !r.Authenticated || r.Overlay != "tmpfs"):
			return fmt.Errorf("boot.json slot %q authenticated %v overlay %q: want slot a, authenticated, tmpfs overlay", r.Slot, r.Authenticated, r.Overlay)
		}
		return nil
	}
}

func wantPeer(b Boot) error {
	if b.Report != nil {
		return fmt.Errorf("a peer's boot printed a keel boot.json")
	}
	return nil
}

// verityThroughput runs verity's Go benchmarks: keel's hash-tree builder and
// `veritysetup format` over the same 256 MiB file.
func verityThroughput(t *testing.T) Throughput {
	t.Helper()
	cmd := exec.Command("go", "test", "-run=^$", "-bench=^(BenchmarkFormatFile|BenchmarkVeritysetupFormat)$", "-benchtime=3x", "-count=1", "./verity")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verity benchmarks: %v\n%s", err, out)
	}
	mbs, err := ParseGoBench(string(out))
	if err != nil {
		t.Fatal(err)
	}
	tp := Throughput{Keel: mbs["FormatFile"], Veritysetup: mbs["VeritysetupFormat"]}
	if tp.Keel == 0 || tp.Veritysetup == 0 {
		t.Fatalf("verity benchmarks: want FormatFile and VeritysetupFormat, got %v", mbs)
	}
	return tp
}

// etcMergeTime runs etcmerge's BenchmarkMerge: one /etc merge of a
// realistic update.
func etcMergeTime(t *testing.T) time.Duration {
	t.Helper()
	cmd := exec.Command("go", "test", "-run=^$", "-bench=^BenchmarkMerge$", "-benchtime=5x", "-count=1", "./etcmerge")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcmerge benchmark: %v\n%s", err, out)
	}
	ns, err := ParseGoBenchTime(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if ns["Merge"] == 0 {
		t.Fatalf("etcmerge benchmark: no BenchmarkMerge in %v", ns)
	}
	return ns["Merge"]
}

// writeReport prints the tables and writes BENCHMARKS.md.
func writeReport(t *testing.T, r Results) {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	fmt.Print("\n" + b.String() + "\n")
	path := filepath.Join(moduleRoot(t), "BENCHMARKS.md")
	if err := UpdateFile(path, r.Markdown()); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
