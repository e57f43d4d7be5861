// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"debug/pe"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Booting through UEFI: OVMF (Debian's ovmf) runs from two pflash drives,
// finds the EFI System Partition of a virtio disk and starts its removable
// media path, EFI/BOOT/BOOTX64.EFI: a unified kernel image (UKI) whose
// systemd-stub (Debian's systemd-boot-efi) sets the Boot Loader Interface's
// variables, LoaderDevicePartUUID among them (the ESP's PARTUUID), and
// boots the bzImage, initramfs and command line it carries.

// ESPType is the GPT type GUID of an EFI System Partition, for Part.Type.
const ESPType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// StubPath is systemd-stub, the EFI program UKI wraps (systemd-boot-efi).
var StubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// ovmfPairs are the OVMF code and variable store templates, in order of
// preference: Debian's 4 MiB build, then its 2 MiB one, neither with
// Secure Boot (a UKI the tests make is not signed). Each code file goes
// with its own variable store.
var ovmfPairs = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
}

// ovmfFirmware returns the OVMF code and variable store templates to boot:
// the first pair of ovmfPairs installed, else the first (QEMU then says
// what is missing).
func ovmfFirmware() (code, vars string) {
	for _, p := range ovmfPairs {
		if fileExists(p[0]) && fileExists(p[1]) {
			return p[0], p[1]
		}
	}
	return ovmfPairs[0][0], ovmfPairs[0][1]
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// NeedOVMF skips t when no OVMF firmware is installed (Debian's ovmf).
func NeedOVMF(t testing.TB) {
	t.Helper()
	code, vars := ovmfFirmware()
	if !fileExists(code) || !fileExists(vars) {
		t.Skipf("no OVMF firmware (%s and %s; Debian package ovmf)", code, vars)
	}
}

// uefiArgs are QEMU's firmware drives for a UEFI boot: the code read-only;
// the variable store the template itself, with snapshot=on, so each QEMU
// run writes its variables to a temporary overlay of its own, dropped when
// it exits (every run starts from the template, as a copy would, and a
// relaunch of the same command line is the same run).
func uefiArgs() []string {
	code, vars := ovmfFirmware()
	esc := func(p string) string { return strings.ReplaceAll(p, ",", ",,") }
	return []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + esc(code),
		"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file=" + esc(vars),
	}
}

// ukiOSRelease is the UKI's .osrel: systemd-stub itself does not read it,
// boot loaders list the image with it.
const ukiOSRelease = "ID=keel-test\nNAME=\"keel test\"\nPRETTY_NAME=\"keel test UKI\"\n"

// UKI builds a unified kernel image in a temporary directory:
// systemd-stub with kernel (an x86 bzImage, such as Kernel(t): not the
// PVH vmlinux QEMU boots directly), initrd ("" for none) and the command
// line baseCmdline + " " + cmdline, for a boot with Options.UEFI.
func UKI(t testing.TB, kernel, initrd, cmdline string) string {
	t.Helper()
	needTool(t, "objcopy", "binutils")
	if !fileExists(StubPath) {
		t.Skipf("no systemd-stub %s (Debian package systemd-boot-efi)", StubPath)
	}
	dir := t.TempDir()
	osrel := filepath.Join(dir, "os-release")
	line := baseCmdline
	if cmdline != "" {
		line += " " + cmdline
	}
	cmdfile := filepath.Join(dir, "cmdline")
	for p, c := range map[string]string{osrel: ukiOSRelease, cmdfile: line + "\x00"} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sections := []ukiSection{{".osrel", osrel}, {".cmdline", cmdfile}, {".linux", kernel}}
	if initrd != "" {
		sections = append(sections, ukiSection{".initrd", initrd})
	}
	args, err := ukiObjcopyArgs(StubPath, sections)
	if err != nil {
		t.Fatalf("UKI: %v", err)
	}
	out := filepath.Join(dir, "keel.efi")
	run(t, "", "objcopy", append(args, StubPath, out)...)
	return out
}

// ukiSection is a section UKI adds to the stub: its name, its content.
type ukiSection struct{ name, file string }

// ukiPageSize aligns the added sections (a multiple of any stub's
// SectionAlignment seen, 512 bytes in systemd 252's).
const ukiPageSize = 0x1000

// ukiObjcopyArgs returns objcopy's options that add the sections to the
// PE stub, one after the other past the end of its own last section, each
// at an address aligned to a page and to the stub's SectionAlignment.
// objcopy takes a section's address as a VMA, ImageBase plus its RVA.
func ukiObjcopyArgs(stub string, sections []ukiSection) ([]string, error) {
	f, err := pe.Open(stub)
	if err != nil {
		return nil, fmt.Errorf("stub %s: %w", stub, err)
	}
	defer f.Close()
	var base uint64
	var align uint64
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		base, align = h.ImageBase, uint64(h.SectionAlignment)
	case *pe.OptionalHeader32:
		base, align = uint64(h.ImageBase), uint64(h.SectionAlignment)
	default:
		return nil, fmt.Errorf("stub %s: no PE optional header", stub)
	}
	if align == 0 || align&(align-1) != 0 {
		return nil, fmt.Errorf("stub %s: SectionAlignment %#x, want a power of two", stub, align)
	}
	align = max(align, ukiPageSize)
	var end uint64
	for _, s := range f.Sections {
		if slices.ContainsFunc(sections, func(u ukiSection) bool { return u.name == s.Name }) {
			return nil, fmt.Errorf("stub %s has a %s section already", stub, s.Name)
		}
		end = max(end, uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, s.Size)))
	}
	if end == 0 {
		return nil, fmt.Errorf("stub %s: no sections", stub)
	}
	var args []string
	rva := alignUp(end, align)
	for _, s := range sections {
		st, err := os.Stat(s.file)
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.name, err)
		}
		args = append(args,
			"--add-section", s.name+"="+s.file,
			"--change-section-vma", s.name+"=0x"+strconv.FormatUint(base+rva, 16))
		rva = alignUp(rva+uint64(st.Size()), align)
	}
	if rva > 1<<32 {
		return nil, errors.New("the sections end beyond 4 GiB: too large for a PE image")
	}
	return args, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// ESP makes a FAT image of sizeMiB (FAT32 from espFAT32MiB up, else
// FAT16, FAT12 below 3 MiB) labelled ESP, holding files: each key a path inside it
// ("EFI/BOOT/BOOTX64.EFI"), its value the host file copied there. It is
// made with mtools, in a file: no loop device, no mount. Use it as the
// Content of a Part of type ESPType.
func ESP(t testing.TB, sizeMiB int, files map[string]string) string {
	t.Helper()
	needTool(t, "mkfs.vfat", "dosfstools")
	needTool(t, "mmd", "mtools")
	needTool(t, "mcopy", "mtools")
	out := filepath.Join(t.TempDir(), "esp.vfat")
	if err := createSparse(out, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "", "mkfs.vfat", append(espFATArgs(sizeMiB), "-n", "ESP", out)...)
	dirs, copies, err := espPlan(files)
	if err != nil {
		t.Fatalf("ESP: %v", err)
	}
	// mtools refuses an image whose geometry it doubts unless told not to
	// check; the image is a file, not a floppy.
	env := []string{"MTOOLS_SKIP_CHECK=1"}
	for _, d := range dirs {
		if _, err := runErr("", env, "mmd", "-i", out, "::/"+d); err != nil {
			t.Fatalf("ESP: %v", err)
		}
	}
	for _, c := range copies {
		if _, err := runErr("", env, "mcopy", "-i", out, "-o", c[1], "::/"+c[0]); err != nil {
			t.Fatalf("ESP: %v", err)
		}
	}
	return out
}

// espFAT32MiB is the smallest ESP made FAT32: with 512-byte clusters
// FAT32 needs 65525 of them, 32 MiB and the FATs (mkfs.vfat makes a
// smaller one, with a warning, that FAT drivers may take for FAT16).
const espFAT32MiB = 33

// espFATArgs chooses mkfs.vfat's FAT size: FAT32 when the image is large
// enough, else FAT16 with clusters of one sector below 16 MiB (mkfs.vfat's
// default cluster leaves FAT16 too few), else FAT12 below 3 MiB.
func espFATArgs(sizeMiB int) []string {
	switch {
	case sizeMiB >= espFAT32MiB:
		return []string{"-F", "32"}
	case sizeMiB >= 16:
		return []string{"-F", "16"}
	case sizeMiB >= 3:
		return []string{"-F", "16", "-s", "1"}
	}
	return []string{"-F", "12"}
}

// espPlan returns the directories to make, parents first, and the files
// to copy (path inside the ESP, host file), sorted.
func espPlan(files map[string]string) (dirs []string, copies [][2]string, err error) {
	seen := map[string]bool{}
	for p, src := range files {
		clean := path.Clean(strings.TrimPrefix(p, "/"))
		if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(clean, "\\:\x00") {
			return nil, nil, fmt.Errorf("path %q: want a relative path inside the ESP such as EFI/BOOT/BOOTX64.EFI", p)
		}
		copies = append(copies, [2]string{clean, src})
	}
	slices.SortFunc(copies, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	for _, c := range copies {
		clean := c[0]
		var parents []string
		for d := path.Dir(clean); d != "."; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for _, d := range slices.Backward(parents) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs, copies, nil
}
