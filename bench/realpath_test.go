// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestBenchRealPath runs the real path alone (KEEL_BENCH=1), without the
// peers' table or BENCHMARKS.md: for working on the boot's speed.
// BENCH_REAL_RUNS sets the repetitions (default 3), BENCH_REAL_ONLY a
// comma-separated list of disk names (btrfs, luks, host-only, ext4) to boot,
// BENCH_REAL_CMDLINE options added to keel's command line (rd.debug, the
// kernel's initcall_debug) to read a boot's console. BENCH_ALT_INIT names
// another keel init binary (built as the Makefile does, from another
// commit), BENCH_ALT_ARGS mkinitrd options added to the generic image's
// (space-separated: another module set): with either, that image joins the
// rotation as the disk btrfs-alt, booted right after btrfs, so that two
// versions are compared boot by boot on a shared machine. The console logs
// stay in qemu-tests/.cache/logs/.
func TestBenchRealPath(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("the benchmark boots Debian in VMs for minutes: run it with KEEL_BENCH=1")
	}
	kernel, kver := vm.Kernel(t), vm.KVer(t)
	dir := t.TempDir()
	k := buildKeel(t, dir)
	key := filepath.Join(dir, "bench.key")
	run(t, k.Slotctl, "keygen", "--out", key)
	r := Results{Machine: DescribeMachine(kver, os.Getenv("KEEL_KVM") == "1")}
	img := func(name string) string { return filepath.Join(dir, name+".img") }
	for _, g := range []struct {
		row *Row
		gen Generator
	}{
		{&r.Generic, KeelGeneric(k, kver, img("keel-generic"), key+".pub")},
		{&r.KeelFull, KeelDemo(k, kver, img("keel-demo"), key+".pub")},
	} {
		if _, err := g.gen.run(); err != nil {
			t.Fatal(err)
		}
		*g.row = Row{Name: g.gen.Name, Image: g.gen.Out, Size: fileSize(t, g.gen.Out)}
	}
	it, err := InitramfsTools(dir, kver, img("initramfs-tools"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.run(); err != nil {
		t.Fatal(err)
	}
	r.Peers = []Row{{Name: "initramfs-tools", Image: it.Out, Size: fileSize(t, it.Out)}}
	realPath(t, &r, k, kernel, kver, dir, key, envCount(t, "BENCH_REAL_RUNS", 3))
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	fmt.Print("\n" + b.String() + "\n")
	md := strings.Builder{}
	r.realMarkdown(&md)
	fmt.Print(md.String())
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// realDisk is one disk of the real path and the image that boots it.
type realDisk struct {
	name, image, form string
	size              int64
	template          string // copied afresh for each repetition (first boot, then steady state)
	cmdline           string
	keel, encrypted   bool
	first, steady     []RealBoot
}

// realPath boots the Debian systemd root (scripts/debian-root.sh): keel's
// generic image from an A/B disk with verity, a persistent upper and btrfs
// data, plain and inside LUKS2; the host-only image (the demo form) on the
// plain one; and initramfs-tools from the same tree on one ext4 partition.
// Each keel disk is copied fresh for each of runs repetitions and booted
// twice: the first boot (seeding /var, a fresh upper) and a later one.
func realPath(t *testing.T, r *Results, k KeelTools, kernel, kver, dir, key string, runs int) {
	t.Helper()
	tree := vm.CopyTree(t, vm.DebianRoot(t))
	vm.WriteFile(t, tree, RealPathScriptPath, RealPathScript)
	if err := os.Chmod(filepath.Join(tree, RealPathScriptPath), 0o755); err != nil {
		t.Fatal(err)
	}
	vm.WriteFile(t, tree, "etc/systemd/system/keel-bench-done.service", RealPathUnit)
	run(t, "ln", "-sf", "../keel-bench-done.service", filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/keel-bench-done.service"))

	luksKey := filepath.Join(dir, "luks.key")
	if err := os.WriteFile(luksKey, []byte("keel-bench-luks-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	luksImg := KeelGeneric(k, kver, filepath.Join(dir, "keel-generic-luks.img"), key+".pub", "--luks-keyfile", luksKey)
	if _, err := luksImg.run(); err != nil {
		t.Fatal(err)
	}
	ab := sealedDisk(t, k, dir, tree, key)
	plain := abWithData(t, k, dir, "ab-btrfs", ab, btrfsData(t, dir))
	luks := abWithData(t, k, dir, "ab-luks", ab, luksBtrfsData(t, dir, luksKey))
	ext4 := ext4Root(t, dir, tree)

	keelCmdline := strings.TrimSpace("overlay=persistent " + os.Getenv("BENCH_REAL_CMDLINE"))
	disks := []*realDisk{
		{name: "btrfs", image: r.Generic.Image, size: r.Generic.Size, form: "generic (mkinitrd defaults, --trust)", template: plain, cmdline: keelCmdline, keel: true},
		{name: "luks", image: luksImg.Out, size: fileSize(t, luksImg.Out), form: "generic, --luks-keyfile; LUKS2 PBKDF2 1000 iterations", template: luks, cmdline: keelCmdline, keel: true, encrypted: true},
		{name: "host-only", image: r.KeelFull.Image, size: r.KeelFull.Size, form: "host-only (" + strings.Join(DemoModules(), ",") + ", --trust)", template: plain, cmdline: keelCmdline, keel: true},
		{name: "ext4", image: peerImage(r, "initramfs-tools"), form: "initramfs-tools MODULES=dep + " + strings.Join(VMModules(), " ") + "; Debian on one ext4 partition (root=/dev/vda1 rw)", template: ext4, cmdline: "root=/dev/vda1 rw"},
	}
	if alt, args := os.Getenv("BENCH_ALT_INIT"), os.Getenv("BENCH_ALT_ARGS"); alt != "" || args != "" {
		form := strings.TrimSpace("generic, BENCH_ALT_INIT=" + alt + " BENCH_ALT_ARGS=" + args)
		if alt == "" {
			alt = k.Init
		}
		g := KeelGeneric(KeelTools{Mkinitrd: k.Mkinitrd, Init: alt}, kver, filepath.Join(dir, "keel-generic-alt.img"), key+".pub", strings.Fields(args)...)
		if _, err := g.run(); err != nil {
			t.Fatal(err)
		}
		d := &realDisk{name: "btrfs-alt", image: g.Out, size: fileSize(t, g.Out), form: form, template: plain, cmdline: keelCmdline, keel: true}
		disks = slices.Insert(disks, 1, d)
	}
	disks = onlyDisks(t, disks)
	for i := range runs {
		for _, d := range disks {
			bootReal(t, kernel, dir, d, i)
		}
	}
	r.RealRuns = runs
	for _, d := range disks {
		r.RealPath = append(r.RealPath, d.rows()...)
	}
}

// onlyDisks keeps the disks BENCH_REAL_ONLY names (all when unset).
func onlyDisks(t *testing.T, disks []*realDisk) []*realDisk {
	only := os.Getenv("BENCH_REAL_ONLY")
	if only == "" {
		return disks
	}
	var out []*realDisk
	for _, d := range disks {
		for _, n := range strings.Split(only, ",") {
			if n == d.name {
				out = append(out, d)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("BENCH_REAL_ONLY=%q: expected some of btrfs, luks, host-only, ext4", only)
	}
	return out
}

func peerImage(r *Results, name string) string {
	for _, p := range r.Peers {
		if p.Name == name {
			return p.Image
		}
	}
	return ""
}

// rows names the disk's rows as RealTargets looks them up.
func (d *realDisk) rows() []RealRow {
	if !d.keel {
		return []RealRow{SummarizeReal("initramfs-tools, ext4", d.form, fileSizeOr0(d.image), d.steady)}
	}
	var name string
	switch d.name {
	case "btrfs":
		name = realGenericPrefix
	case "btrfs-alt":
		name = "keel generic (BENCH_ALT_INIT, BENCH_ALT_ARGS)"
	case "luks":
		name = "keel generic, LUKS2 + btrfs"
	default:
		name = "keel host-only, btrfs"
	}
	return []RealRow{
		SummarizeReal(name+", "+realFirstSuffix, d.form, d.size, d.first),
		SummarizeReal(name+", "+realSteadySuffix, d.form, d.size, d.steady),
	}
}

func fileSizeOr0(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// bootReal boots a fresh copy of d's disk: for keel twice (first boot,
// steady state), for the peer once (its disk has no first-boot work).
func bootReal(t *testing.T, kernel, dir string, d *realDisk, i int) {
	t.Helper()
	disk := filepath.Join(dir, fmt.Sprintf("real-%s-%d.img", d.name, i))
	run(t, "cp", "--sparse=always", d.template, disk)
	defer os.Remove(disk)
	kinds := []struct {
		first bool
		to    *[]RealBoot
	}{{true, &d.first}, {false, &d.steady}}
	if !d.keel {
		kinds = kinds[1:]
	}
	for _, kd := range kinds {
		name := fmt.Sprintf("real/%s/%d/first=%v", d.name, i+1, kd.first)
		c := RealCase{Keel: d.keel, Encrypted: d.encrypted, First: kd.first}
		var b RealBoot
		if !t.Run(name, func(t *testing.T) { b = bootRealOnce(t, kernel, d.image, disk, d.cmdline, c) }) {
			t.FailNow()
		}
		*kd.to = append(*kd.to, b)
	}
}

func bootRealOnce(t *testing.T, kernel, image, disk, cmdline string, c RealCase) RealBoot {
	m := vm.Start(t, vm.Options{Kernel: kernel, Initrd: image, Disks: []string{disk}, Cmdline: "printk.time=1 " + cmdline, Timeout: 4 * time.Minute})
	m.Expect(DoneLine)
	m.ExpectPowerOff()
	b, err := ParseRealBoot(m.Output())
	if err == nil {
		err = c.Check(b)
	}
	if err != nil {
		t.Fatalf("%v (console log: %s)", err, m.LogPath())
	}
	t.Logf("%s in the initramfs, multi-user.target at %s (Run /init at %s)", Seconds(b.InInitramfs()), Seconds(b.MultiUser), Seconds(b.RunInit))
	return b
}

// sealedDisk seals the tree's SquashFS and returns the A/B partitions with
// it in both slots.
func sealedDisk(t *testing.T, k KeelTools, dir, tree, key string) []vm.Part {
	t.Helper()
	sq := vm.MkSquashfs(t, tree)
	ver := filepath.Join(dir, "real-verity.img")
	run(t, k.Slotctl, "seal", "--image", sq, "--key", key, "--image-id", "bench-debian", "--out", ver)
	rootMiB := int(fileSizeOr0(sq)>>20) + 2
	var parts []vm.Part
	for _, s := range []string{"a", "b"} {
		parts = append(parts, vm.Part{Name: "root-" + s, SizeMiB: rootMiB, Content: sq}, vm.Part{Name: "verity-" + s, SizeMiB: 2, Content: ver})
	}
	return append(parts, vm.Part{Name: "bootstate", SizeMiB: 1})
}

// dataMiB is the data partition; btrfs keeps some hundred MiB for itself.
const dataMiB = 320

// abWithData makes the A/B disk with data as its data partition, slot a
// marked good (the state after an update was accepted).
func abWithData(t *testing.T, k KeelTools, dir, name string, ab []vm.Part, data string) string {
	t.Helper()
	parts := append(append([]vm.Part(nil), ab...), vm.Part{Name: "data", SizeMiB: dataMiB, Content: data})
	d := vm.NewDisk(t, filepath.Join(dir, name+".img"), parts).Path
	run(t, k.Slotctl, "mark-good", "a", "--disk", d)
	return d
}

func btrfsData(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "btrfs-data.img")
	if err := os.Truncate(create(t, p), dataMiB<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.btrfs", "-q", p)
	return p
}

// luksBtrfsData is btrfs encrypted in place as LUKS2 (offline: the host
// has no device-mapper) with PBKDF2 at test cost.
func luksBtrfsData(t *testing.T, dir, keyFile string) string {
	t.Helper()
	p := filepath.Join(dir, "luks-data.img")
	if err := os.Truncate(create(t, p), dataMiB<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.btrfs", "-q", "-b", fmt.Sprintf("%dM", dataMiB-32), p)
	run(t, "cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "32M", "--key-file", keyFile,
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "-q", p)
	return p
}

// ext4Root is the tree on one ext4 partition: the stock mutable layout.
func ext4Root(t *testing.T, dir, tree string) string {
	t.Helper()
	out := run(t, "du", "-sm", tree)
	var mib int
	if _, err := fmt.Sscanf(out, "%d", &mib); err != nil {
		t.Fatalf("du -sm %s: %q", tree, out)
	}
	size := mib*3/2 + 64
	fs := vm.MkExt4(t, tree, size, "debian")
	return vm.NewDisk(t, filepath.Join(dir, "real-ext4.img"), []vm.Part{{Name: "debian", SizeMiB: size, Content: fs}}).Path
}

func create(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}
