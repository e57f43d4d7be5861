// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"debug/pe"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestQEMUArgsUEFI(t *testing.T) {
	o := Options{Kernel: "/k", Initrd: "/i", Disks: []string{"/a.img"}, Cmdline: "slot=a", UEFI: true}
	args := qemuArgs(o, false)
	joined := strings.Join(args, " ")
	for _, no := range []string{"-kernel", "-initrd", "-append"} {
		if slices.Contains(args, no) {
			t.Errorf("UEFI qemu args %q: want no %s", joined, no)
		}
	}
	code, vars := ovmfFirmware()
	for _, want := range []string{
		"-nodefaults", "-no-reboot", "-serial stdio", "-drive file=/a.img,if=virtio,format=raw",
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive if=pflash,format=raw,unit=1,snapshot=on,file=" + vars,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("UEFI qemu args %q: want %q", joined, want)
		}
	}
}

func TestESPPlan(t *testing.T) {
	dirs, copies, err := espPlan(map[string]string{
		"EFI/BOOT/BOOTX64.EFI": "/u", "/loader/entries/a.conf": "/c", "EFI/keel/x": "/x", "top": "/t",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"EFI", "EFI/BOOT", "EFI/keel", "loader", "loader/entries"}; !slices.Equal(dirs, want) {
		t.Errorf("dirs %q, want %q", dirs, want)
	}
	want := [][2]string{{"EFI/BOOT/BOOTX64.EFI", "/u"}, {"EFI/keel/x", "/x"}, {"loader/entries/a.conf", "/c"}, {"top", "/t"}}
	if !slices.Equal(copies, want) {
		t.Errorf("copies %q, want %q", copies, want)
	}
	for _, bad := range []string{"", "/", "..", "../x", "a:b"} {
		if _, _, err := espPlan(map[string]string{bad: "/f"}); err == nil {
			t.Errorf("espPlan(%q) succeeded", bad)
		}
	}
}

// TestUKISections builds a UKI from the installed stub and checks that the
// sections it added follow the stub's own, aligned, none overlapping.
func TestUKISections(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd")
	for p, n := range map[string]int{kernel: 100000, initrd: 5000} {
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uki := UKI(t, kernel, initrd, "slot=a")
	f, err := pe.Open(uki)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var end uint32
	added := map[string]bool{}
	for _, s := range f.Sections {
		if s.VirtualAddress < end {
			t.Errorf("section %s at %#x overlaps the previous one (ends at %#x)", s.Name, s.VirtualAddress, end)
		}
		// The raw size is rounded up to FileAlignment; the stub's
		// sections may be closer than that.
		size := s.VirtualSize
		if size == 0 {
			size = s.Size
		}
		end = s.VirtualAddress + size
		switch s.Name {
		case ".osrel", ".cmdline", ".linux", ".initrd":
			added[s.Name] = true
			if s.VirtualAddress%ukiPageSize != 0 {
				t.Errorf("section %s at %#x: not page aligned", s.Name, s.VirtualAddress)
			}
			if s.Characteristics&pe.IMAGE_SCN_CNT_INITIALIZED_DATA == 0 {
				t.Errorf("section %s characteristics %#x: want initialized data", s.Name, s.Characteristics)
			}
		}
		if s.Name == ".cmdline" {
			b, err := s.Data()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimRight(string(b), "\x00"); got != baseCmdline+" slot=a" {
				t.Errorf(".cmdline %q, want %q", got, baseCmdline+" slot=a")
			}
		}
		if s.Name == ".linux" && s.VirtualSize != 100000 {
			t.Errorf(".linux virtual size %d, want 100000", s.VirtualSize)
		}
	}
	if len(added) != 4 {
		t.Errorf("UKI sections %v: want .osrel, .cmdline, .linux, .initrd", added)
	}
	if h, ok := f.OptionalHeader.(*pe.OptionalHeader64); !ok || h.SizeOfImage < end {
		t.Errorf("SizeOfImage below the end of the sections %#x", end)
	}
}

// TestESPImage makes an ESP and reads its file back with mtools.
func TestESPImage(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("hello ESP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{2, 8, 33} {
		img := ESP(t, size, map[string]string{"EFI/BOOT/BOOTX64.EFI": src, "EFI/BOOT/other": src})
		needTool(t, "mtype", "mtools")
		out, err := runErr("", []string{"MTOOLS_SKIP_CHECK=1"}, "mtype", "-i", img, "::/EFI/BOOT/BOOTX64.EFI")
		if err != nil || string(out) != "hello ESP\n" {
			t.Errorf("ESP of %d MiB: BOOTX64.EFI = %q, %v", size, out, err)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]string{2: "FAT12   ", 8: "FAT16   ", 33: "FAT32   "}[size]
		if !strings.Contains(string(b[:512]), want) {
			t.Errorf("ESP of %d MiB: boot sector has no %q", size, want)
		}
	}
}
