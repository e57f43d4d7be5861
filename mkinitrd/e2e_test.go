// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/initramfs"
)

// hostKver returns an installed kernel release with depmod output: the
// running kernel's if its modules are installed, else the newest one.
func hostKver(t testing.TB) string {
	t.Helper()
	if rel, err := hostKernelRelease(); err == nil {
		if _, err := os.Stat(filepath.Join("/lib/modules", rel, "modules.dep")); err == nil {
			return rel
		}
	}
	deps, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(deps) == 0 {
		t.Skip("no kernel modules installed (/lib/modules/*/modules.dep)")
	}
	slices.Sort(deps)
	return filepath.Base(filepath.Dir(deps[len(deps)-1]))
}

// dummyInit stands in for the keel init binary.
func dummyInit(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, []byte("#!keel-init-stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func mkinitrd(t testing.TB, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("mkinitrd %q: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// readImage returns path → record of an image.
func readImage(t *testing.T, img string) map[string]*initramfs.Record {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := initramfs.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, err := initramfs.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*initramfs.Record{}
	for _, rec := range recs {
		m["/"+rec.Name] = rec
	}
	return m
}

func TestBuildHostModules(t *testing.T) {
	kver := hostKver(t)
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key := writeKey(t, dir, "k.pub", pemKey(t, pub))
	extra := writeKey(t, dir, "extra.txt", []byte("extra\n"))
	img := filepath.Join(dir, "initrd.img")
	summary := mkinitrd(t, "--out", img, "--kver", kver, "--init", dummyInit(t), "--no-default-modules",
		"--modules", "virtio_blk,ext4", "--modules", "dm-crypt", "--trust", key,
		"--cmdline", "rd.timeout=5 quiet", "--add", extra+":/etc/extra.txt")
	if !strings.Contains(summary, "modules") || !strings.Contains(summary, "1 trusted keys") {
		t.Errorf("summary %q", summary)
	}
	files := readImage(t, img)
	for path, mode := range map[string]uint32{
		"/init": 0o100755, "/dev": 0o040755, "/proc": 0o040555, "/sys": 0o040555, "/run": 0o040755,
		"/tmp": 0o041777, "/dev/console": 0o020600, "/dev/null": 0o020666, "/dev/kmsg": 0o020644,
		"/etc/keel/initrd.json": 0o100644, "/etc/extra.txt": 0o100644,
	} {
		if r := files[path]; r == nil || r.Mode != mode {
			t.Errorf("%s: %+v, want mode %o", path, r, mode)
		}
	}
	if c := files["/dev/console"]; c == nil || c.RdevMajor != 5 || c.RdevMinor != 1 {
		t.Errorf("/dev/console is not 5:1: %+v", c)
	}
	var cfgText bytes.Buffer
	if err := run([]string{"cat", img, bakedconf.Path}, &cfgText, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg, err := bakedconf.Parse(cfgText.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kver != kver || cfg.Cmdline != "rd.timeout=5 quiet" || len(cfg.TrustedKeys) != 1 ||
		!bytes.Equal(cfg.TrustedKeys[0], pub) || cfg.Locked {
		t.Errorf("baked config %+v", cfg)
	}
	var names []string
	for _, m := range cfg.Modules {
		names = append(names, m.Name)
		r := files[m.Path]
		if r == nil || !bytes.HasPrefix(r.Body, []byte("\x7fELF")) {
			t.Errorf("module %s: %s missing or not an uncompressed ELF", m.Name, m.Path)
		}
	}
	for _, want := range []string{"virtio_blk", "ext4", "jbd2", "dm_crypt", "dm_mod", "xts", "ecb"} {
		if !slices.Contains(names, want) {
			t.Errorf("plan lacks %s: %v", want, names)
		}
	}
	var listing bytes.Buffer
	if err := run([]string{"ls", img}, &listing, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"crw-------       5,1 /dev/console", "-rwxr-xr-x        21 /init"} {
		if !strings.Contains(listing.String(), want) {
			t.Errorf("ls lacks %q:\n%s", want, listing.String())
		}
	}
}

func TestBuildShell(t *testing.T) {
	dir := t.TempDir()
	builtin := filepath.Join(dir, "builtin.img")
	out := mkinitrd(t, "--out", builtin, "--kver", "none", "--init", dummyInit(t), "--no-default-modules")
	files := readImage(t, builtin)
	if r := files["/bin/sh"]; r == nil || string(r.Body) != "/init" || files["/bin/busybox"] != nil || !strings.Contains(out, "shell yes") {
		t.Errorf("default image: /bin/sh %+v, want a symlink to /init and no busybox; summary %q", r, out)
	}
	if c, err := bakedconf.Parse(files[bakedconf.Path].Body); err != nil || c.Shell != "/bin/sh" {
		t.Errorf("baked shell: %+v, %v; want /bin/sh", c, err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed")
	}
	img := filepath.Join(dir, "a.img")
	mkinitrd(t, "--out", img, "--kver", "none", "--init", dummyInit(t), "--no-default-modules", "--compress", "gzip", "--shell", "/bin/busybox")
	files = readImage(t, img)
	if r := files["/bin/sh"]; r == nil || string(r.Body) != "busybox" {
		t.Errorf("/bin/sh: %+v, want a symlink to busybox", r)
	}
	if files["/bin/busybox"] == nil || files["/bin/switch_root"] == nil {
		t.Error("busybox or its applets missing")
	}
	locked := filepath.Join(dir, "locked.img")
	out = mkinitrd(t, "--out", locked, "--kver", "none", "--init", dummyInit(t), "--no-default-modules", "--locked", "--trust", testKey(t))
	files = readImage(t, locked)
	if files["/bin/sh"] != nil || files["/bin/busybox"] != nil || !strings.Contains(out, "shell no, locked yes") {
		t.Errorf("locked image has a shell, or summary %q is wrong", out)
	}
}

// TestFirmware builds from a sysroot whose firmware directory holds one of
// the files r8169 declares.
func TestFirmware(t *testing.T) {
	kver := hostKver(t)
	if _, err := os.Stat(filepath.Join("/lib/modules", kver, "kernel/drivers/net/ethernet/realtek")); err != nil {
		t.Skip("no r8169 module")
	}
	sysroot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sysroot, "lib/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("/lib/modules", kver), filepath.Join(sysroot, "lib/modules", kver)); err != nil {
		t.Fatal(err)
	}
	fw := filepath.Join(sysroot, "lib/firmware/rtl_nic/rtl8168d-1.fw")
	if err := os.MkdirAll(filepath.Dir(fw), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fw, []byte("firmware"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "fw.img")
	out := mkinitrd(t, "--out", img, "--sysroot", sysroot, "--kver", kver, "--init", dummyInit(t),
		"--no-default-modules", "--modules", "r8169", "--compress", "none")
	if r := readImage(t, img)["/lib/firmware/rtl_nic/rtl8168d-1.fw"]; r == nil || string(r.Body) != "firmware" {
		t.Errorf("firmware missing from the image")
	}
	if !strings.Contains(out, "1 firmware files") {
		t.Errorf("summary %q", out)
	}
}

func TestDeterministic(t *testing.T) {
	kver := hostKver(t)
	init := dummyInit(t)
	dir := t.TempDir()
	var sums [2][32]byte
	for i := range sums {
		img := filepath.Join(dir, "img"+string(rune('0'+i)))
		mkinitrd(t, "--out", img, "--kver", kver, "--init", init, "--no-default-modules",
			"--modules", "virtio_blk,ext4,btrfs")
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two builds differ: %x vs %x", sums[0], sums[1])
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	init := dummyInit(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong kver", []string{"--kver", "0.0-nonexistent", "--modules", "ext4"},
			"lib/modules/0.0-nonexistent/modules.dep: not found: is KVER right and are modules installed? (run depmod)"},
		{"missing init", []string{"--kver", "x", "--no-default-modules", "--init", filepath.Join(dir, "nope")}, "--init"},
		{"bad add", []string{"--kver", "x", "--no-default-modules", "--add", "nodst"}, "expected SRC:DST"},
		{"dynamic shell", []string{"--kver", "x", "--no-default-modules", "--shell", "/bin/ls"}, "dynamically linked"},
		{"non-ELF shell", []string{"--kver", "x", "--no-default-modules", "--shell", init}, "not an ELF binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(dir, tt.name+".img")
			args := append([]string{"--out", img, "--init", init}, tt.args...)
			err := run(args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*"+tt.name+"*")); len(left) > 0 {
				t.Errorf("failed build left %v", left)
			}
		})
	}
}

func TestMissingModule(t *testing.T) {
	kver := hostKver(t)
	err := run([]string{"--out", filepath.Join(t.TempDir(), "x.img"), "--kver", kver, "--init", dummyInit(t),
		"--modules", "no_such_module"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `module "no_such_module": not found in /lib/modules/`+kver) {
		t.Fatalf("err %v", err)
	}
}

func TestCatErrors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	mkinitrd(t, "--out", img, "--kver", "x", "--init", dummyInit(t), "--no-default-modules", "--shell", "none")
	for path, want := range map[string]string{"/nope": "no /nope in the image", "/dev/console": "not a regular file"} {
		if err := run([]string{"cat", img, path}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cat %s: %v, want %q", path, err, want)
		}
	}
}

// TestGNUCpioListsImage checks the uncompressed image with GNU cpio.
func TestGNUCpioListsImage(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	img := filepath.Join(t.TempDir(), "x.img")
	mkinitrd(t, "--out", img, "--kver", "x", "--init", dummyInit(t), "--no-default-modules", "--compress", "none")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etc/keel/initrd.json") || !strings.Contains(string(out), "dev/console") {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
}

// BenchmarkMkinitrd builds a typical image: the default modules of the
// installed kernel, busybox, zstd.
func BenchmarkMkinitrd(b *testing.B) {
	kver := hostKver(b)
	init := dummyInit(b)
	img := filepath.Join(b.TempDir(), "bench.img")
	for b.Loop() {
		mkinitrd(b, "--out", img, "--kver", kver, "--init", init)
	}
}

// BenchmarkMkinitrdSmall builds a minimal virtio + ext4 image.
func BenchmarkMkinitrdSmall(b *testing.B) {
	kver := hostKver(b)
	init := dummyInit(b)
	img := filepath.Join(b.TempDir(), "bench.img")
	for b.Loop() {
		mkinitrd(b, "--out", img, "--kver", kver, "--init", init, "--no-default-modules", "--modules", "virtio_blk,ext4")
	}
}
