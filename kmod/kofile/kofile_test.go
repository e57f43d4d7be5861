// SPDX-License-Identifier: Apache-2.0

package kofile

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// fakeModule builds the smallest ELF relocatable with a .modinfo section.
func fakeModule(t testing.TB, modinfo string) []byte {
	t.Helper()
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	infoOff := uint64(64)
	strOff := infoOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: 1,
		Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], "\x7fELF\x02\x01\x01")
	must(t, binary.Write(&b, binary.LittleEndian, hdr))
	b.WriteString(modinfo)
	b.WriteString(shstr)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: infoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	must(t, binary.Write(&b, binary.LittleEndian, sections))
	return b.Bytes()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFirmware(t *testing.T) {
	ko := fakeModule(t, "license=GPL\x00firmware=rtl_nic/rtl8168d-1.fw\x00name=r8169\x00firmware=rtl_nic/rtl8125a-3.fw\x00")
	fw, err := Firmware(ko)
	must(t, err)
	if want := []string{"rtl_nic/rtl8168d-1.fw", "rtl_nic/rtl8125a-3.fw"}; !slices.Equal(fw, want) {
		t.Fatalf("Firmware = %v, want %v", fw, want)
	}
}

func TestModinfoErrors(t *testing.T) {
	if _, err := Modinfo([]byte("not elf")); err == nil || !strings.Contains(err.Error(), "not an ELF module") {
		t.Errorf("Modinfo(garbage) = %v", err)
	}
	noInfo := fakeModule(t, "")
	noInfo = bytes.Replace(noInfo, []byte(".modinfo"), []byte(".notinfo"), 1)
	if _, err := Modinfo(noInfo); err == nil || !strings.Contains(err.Error(), "no .modinfo") {
		t.Errorf("Modinfo(no .modinfo) = %v", err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	ko := fakeModule(t, "name=x\x00")
	plain := filepath.Join(dir, "x.ko")
	must(t, os.WriteFile(plain, ko, 0o644))

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(ko)
	must(t, zw.Close())
	must(t, os.WriteFile(plain+".gz", gz.Bytes(), 0o644))

	enc, err := zstd.NewWriter(nil)
	must(t, err)
	must(t, os.WriteFile(plain+".zst", enc.EncodeAll(ko, nil), 0o644))

	files := []string{plain, plain + ".gz", plain + ".zst"}
	if _, err := exec.LookPath("xz"); err == nil {
		xz := exec.Command("xz", "-k", plain)
		if out, err := xz.CombinedOutput(); err != nil {
			t.Fatalf("xz: %v %s", err, out)
		}
		files = append(files, plain+".xz")
	}
	for _, f := range files {
		got, err := Read(f)
		if err != nil || !bytes.Equal(got, ko) {
			t.Errorf("Read(%s) = %d bytes, %v; want the %d-byte module", filepath.Base(f), len(got), err, len(ko))
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ko.zst")
	must(t, os.WriteFile(bad, []byte("not zstd"), 0o644))
	tests := []struct{ path, want string }{
		{filepath.Join(dir, "x.txt"), "expected a .ko"},
		{bad, "bad.ko.zst"},
		{filepath.Join(dir, "gone.ko.gz"), "no such file"},
	}
	for _, tt := range tests {
		if _, err := Read(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Read(%s) = %v, want error containing %q", tt.path, err, tt.want)
		}
	}
}

// TestHostModule reads a real module of an installed kernel, when there is one.
func TestHostModule(t *testing.T) {
	found, _ := filepath.Glob("/lib/modules/*/kernel/drivers/net/ethernet/realtek/r8169.ko*")
	if len(found) == 0 {
		t.Skip("no r8169 module installed")
	}
	ko, err := Read(found[0])
	must(t, err)
	fw, err := Firmware(ko)
	must(t, err)
	if len(fw) == 0 || !strings.HasPrefix(fw[0], "rtl_nic/") {
		t.Fatalf("%s: firmware %v, want rtl_nic/...", found[0], fw)
	}
}

func TestFindFirmware(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "vendor"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "vendor/a.bin"), []byte("a"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "b.fw.xz"), []byte("b"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "c.fw.zst"), []byte("c"), 0o644))
	found, missing := FindFirmware(dir, []string{"vendor/a.bin", "b.fw", "c.fw", "vendor/a.bin", "gone.bin", "../../etc/passwd"})
	want := []FirmwareFile{
		{filepath.Join(dir, "vendor/a.bin"), "/lib/firmware/vendor/a.bin"},
		{filepath.Join(dir, "b.fw.xz"), "/lib/firmware/b.fw.xz"},
		{filepath.Join(dir, "c.fw.zst"), "/lib/firmware/c.fw.zst"},
	}
	if !slices.Equal(found, want) {
		t.Errorf("found %v, want %v", found, want)
	}
	if !slices.Equal(missing, []string{"gone.bin", "../../etc/passwd"}) {
		t.Errorf("missing %v", missing)
	}
}

// FuzzModinfo: .modinfo comes from module files on disk; any bytes must
// give pairs or an error, never a panic.
func FuzzModinfo(f *testing.F) {
	f.Add(fakeModule(f, "firmware=a.fw\x00license=GPL\x00"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Modinfo(b)
		if err == nil {
			for _, kv := range info {
				if strings.ContainsRune(kv[0], 0) {
					t.Fatalf("key %q holds a NUL", kv[0])
				}
			}
		}
	})
}

// FuzzFindFirmware: whatever firmware names a module declares, what is
// found lies under fwDir and goes under /lib/firmware: a name never leads
// out of either; every name is found or missing, once.
func FuzzFindFirmware(f *testing.F) {
	f.Add("iwlwifi-9000.ucode", "../../etc/shadow")
	f.Add("/abs/x.bin", "a/../../b")
	f.Add("ok.bin", "ok.bin")
	f.Fuzz(func(t *testing.T, a, b string) {
		root := t.TempDir()
		fw := filepath.Join(root, "lib", "firmware")
		for _, p := range []string{filepath.Join(fw, "ok.bin"), filepath.Join(fw, "sub", "x.bin.zst"), filepath.Join(root, "etc", "shadow"), filepath.Join(root, "b")} {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		found, missing := FindFirmware(fw, []string{a, b})
		for _, ff := range found {
			if !strings.HasPrefix(ff.Source, fw+"/") || !strings.HasPrefix(ff.Path, "/lib/firmware/") || strings.Contains(ff.Path, "..") {
				t.Fatalf("names %q, %q: found %+v outside the firmware directory", a, b, ff)
			}
		}
		want := 2
		if a == b {
			want = 1
		}
		if len(found)+len(missing) != want {
			t.Fatalf("names %q, %q: found %v, missing %v", a, b, found, missing)
		}
	})
}
