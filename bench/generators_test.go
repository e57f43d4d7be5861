// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGeneratorArgs(t *testing.T) {
	dir := t.TempDir()
	k := KeelTools{Mkinitrd: "/x/mkinitrd", Init: "/x/init"}
	it, err := InitramfsTools(dir, "6.1.0-56-amd64", "/o/it.img")
	if err != nil {
		t.Fatal(err)
	}
	dr, err := Dracut(dir, "6.1.0-56-amd64", "/o/dracut.img")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		g    Generator
		want []string // in this order, not necessarily adjacent
	}{
		{KeelSmall(k, "K", "/o/k.img"), []string{"/x/mkinitrd", "--out", "/o/k.img", "--init", "/x/init", "--no-default-modules", "virtio_pci,virtio_blk,ext4"}},
		{KeelDemo(k, "K", "/o/d.img", "/k.pub"), []string{"--no-default-modules", "virtio_pci,virtio_blk,squashfs,overlay,dm_verity,btrfs", "--trust", "/k.pub"}},
		{KeelGeneric(k, "K", "/o/g.img", "/k.pub"), []string{"/x/mkinitrd", "--out", "/o/g.img", "--trust", "/k.pub"}},
		{KeelGeneric(k, "K", "/o/l.img", "/k.pub", "--luks-keyfile", "/k"), []string{"/x/mkinitrd", "--trust", "/k.pub", "--luks-keyfile", "/k"}},
		{it, []string{"mkinitramfs", "-d", filepath.Join(dir, "initramfs-tools"), "-o", "/o/it.img", "6.1.0-56-amd64"}},
		{dr, []string{"dracut", "--conf", "/dev/null", "--hostonly", "--no-hostonly-cmdline", "virtio_pci virtio_blk ext4", "/o/dracut.img"}},
		{Tiny(dir, "K", "/o/t.img"), []string{"mktirfs", "-o", "/o/t.img", "--auto-modules=no", "--include-modules=virtio_pci,virtio_blk,ext4", "K"}},
	}
	for _, tt := range tests {
		if !subsequence(tt.g.Args, tt.want) {
			t.Errorf("%s: args %q, want %q in order", tt.g.Name, tt.g.Args, tt.want)
		}
	}
	if slices.Contains(KeelGeneric(k, "K", "x", "/k.pub").Args, "--no-default-modules") {
		t.Error("the generic image must keep the default modules")
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "initramfs-tools", "initramfs.conf"))
	mods, _ := os.ReadFile(filepath.Join(dir, "initramfs-tools", "modules"))
	if !strings.Contains(string(conf), "MODULES=dep\n") || string(mods) != "virtio_pci\nvirtio_blk\next4\n" {
		t.Errorf("initramfs-tools configuration: initramfs.conf %q, modules %q", conf, mods)
	}
}

func subsequence(s, want []string) bool {
	i := 0
	for _, v := range s {
		if i < len(want) && v == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestGeneratorTime(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	g := Generator{Name: "fake", Out: out, Env: []string{"BENCH_X=abc"}, Args: []string{"sh", "-c", `printf %s "$BENCH_X" >"$0"`, out}}
	s, size, err := g.Time(3)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || s.Min <= 0 || s.Min > s.Median || s.Median > s.Max || size != 3 {
		t.Errorf("Time = %+v, size %d; want 3 ordered samples and a 3-byte image", s, size)
	}
	bad := Generator{Name: "broken", Out: out, Args: []string{"sh", "-c", "echo no modules.dep >&2; exit 3"}}
	if _, _, err := bad.Time(1); err == nil || !strings.Contains(err.Error(), "no modules.dep") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing generator: %v, want its name and output in the error", err)
	}
	none := Generator{Name: "silent", Out: filepath.Join(t.TempDir(), "none"), Args: []string{"true"}}
	if _, _, err := none.Time(1); err == nil || !strings.Contains(err.Error(), "no image") {
		t.Errorf("generator writing nothing: %v, want an error", err)
	}
	if _, err := LookPath("no-such-generator-xyz"); err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Errorf("LookPath of a missing tool: %v", err)
	}
}
