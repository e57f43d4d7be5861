// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// miniELF is an x86-64 ELF header, one program header and, when pvh, a
// PT_NOTE segment holding a "Xen" note of type 18 (the PVH entry) after a
// note of another type; without pvh only the other note.
func miniELF(pvh bool) []byte {
	note := func(name string, typ uint32, desc []byte) []byte {
		var b bytes.Buffer
		n := append([]byte(name), 0)
		binary.Write(&b, binary.LittleEndian, [3]uint32{uint32(len(n)), uint32(len(desc)), typ})
		b.Write(n)
		b.Write(make([]byte, (4-len(n)%4)%4))
		b.Write(desc)
		b.Write(make([]byte, (4-len(desc)%4)%4))
		return b.Bytes()
	}
	notes := note("Xen", 6, []byte("linux"))
	if pvh {
		notes = append(notes, note("Xen", pvhEntryNote, []byte{0, 0, 0, 1})...)
	}
	const ehsize, phsize = 64, 56
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	le := binary.LittleEndian
	binary.Write(&b, le, uint16(2))                              // ET_EXEC
	binary.Write(&b, le, uint16(62))                             // EM_X86_64
	binary.Write(&b, le, uint32(1))                              // version
	binary.Write(&b, le, uint64(0x1000000))                      // entry
	binary.Write(&b, le, uint64(ehsize))                         // phoff
	binary.Write(&b, le, uint64(0))                              // shoff
	binary.Write(&b, le, uint32(0))                              // flags
	binary.Write(&b, le, [6]uint16{ehsize, phsize, 1, 64, 0, 0}) // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
	off := uint64(ehsize + phsize)
	binary.Write(&b, le, uint32(4)) // PT_NOTE
	binary.Write(&b, le, uint32(4)) // PF_R
	binary.Write(&b, le, [6]uint64{off, 0, 0, uint64(len(notes)), uint64(len(notes)), 4})
	b.Write(notes)
	return b.Bytes()
}

// fakeBzImage wraps payload in a bzImage setup header (protocol 2.15, two
// setup sectors), followed by payload and the 4-byte size the kernel's
// build appends.
func fakeBzImage(payload []byte) []byte {
	const sects = 2
	img := make([]byte, (sects+1)*512+16)
	img[0x1f1] = sects
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 16) // from the protected-mode code
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)+4))
	img = append(img, payload...)
	return binary.LittleEndian.AppendUint32(img, 12345)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeKernel(t *testing.T, image []byte) string {
	t.Helper()
	k := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(k, image, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPVHKernelExtractsTheELF(t *testing.T) {
	t.Setenv("KEEL_CACHE_DIR", t.TempDir())
	elfBytes := miniELF(true)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	payloads := map[string][]byte{"gzip": gzipBytes(t, elfBytes), "zstd": enc.EncodeAll(elfBytes, nil)}
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "--check=crc32", "--stdout")
		cmd.Stdin = bytes.NewReader(elfBytes)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		payloads["xz"] = out
	}
	for name, p := range payloads {
		k := writeKernel(t, fakeBzImage(p))
		got, err := pvhKernel(k)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, err := os.ReadFile(got)
		if err != nil || !bytes.Equal(b, elfBytes) {
			t.Errorf("%s: %s holds %d bytes (%v), want the %d-byte ELF", name, got, len(b), err, len(elfBytes))
		}
		// The second time it comes from the cache, under the same name.
		if again, err := pvhKernel(k); err != nil || again != got {
			t.Errorf("%s: second extraction %q, %v; want %q", name, again, err, got)
		}
	}
}

func TestPVHKernelRefuses(t *testing.T) {
	t.Setenv("KEEL_CACHE_DIR", t.TempDir())
	outside := fakeBzImage(gzipBytes(t, miniELF(true)))
	binary.LittleEndian.PutUint32(outside[0x24c:], uint32(len(outside)))
	old := fakeBzImage(gzipBytes(t, miniELF(true)))
	binary.LittleEndian.PutUint16(old[0x206:], 0x207)
	tests := []struct {
		name  string
		image []byte
		want  string
	}{
		{"not a bzImage", []byte("not a kernel"), "not an x86 bzImage"},
		{"old boot protocol", old, "want 2.08 or later"},
		{"payload outside", outside, "outside the"},
		{"lz4 payload", fakeBzImage([]byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3}), "magic 02 21 4c 18"},
		{"no PVH note", fakeBzImage(gzipBytes(t, miniELF(false))), "no PVH entry note"},
		{"not an ELF", fakeBzImage(gzipBytes(t, []byte("MZ not an ELF at all, padding padding padding padding padding"))), "decompressed kernel"},
	}
	for _, tt := range tests {
		k := writeKernel(t, tt.image)
		if got, err := pvhKernel(k); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: pvhKernel = %q, %v; want an error saying %q", tt.name, got, err, tt.want)
		}
		// Start boots such a kernel as it is, and says why.
		if f, note := bootKernel(k); f != k || !strings.Contains(note, tt.want) {
			t.Errorf("%s: bootKernel = %q, %q; want %s itself and the reason", tt.name, f, note, k)
		}
	}
}

func TestBootKernelOptOut(t *testing.T) {
	t.Setenv("KEEL_CACHE_DIR", t.TempDir())
	t.Setenv("KEEL_QEMU_BZIMAGE", "1")
	k := writeKernel(t, fakeBzImage(gzipBytes(t, miniELF(true))))
	if f, note := bootKernel(k); f != k || note != "" {
		t.Errorf("with KEEL_QEMU_BZIMAGE=1 bootKernel = %q, %q; want the bzImage, no note", f, note)
	}
}

// The test kernel itself: Debian's is an xz bzImage with CONFIG_PVH.
func TestPVHKernelOfTheTestKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses the whole kernel (seconds); the QEMU runs boot it")
	}
	k, err := findKernel(os.Getenv("KEEL_KERNEL"), "/boot")
	if err != nil {
		t.Skip(err)
	}
	image, err := os.ReadFile(k)
	if err != nil {
		t.Skip(err)
	}
	payload, err := bzImagePayload(image)
	if err != nil {
		t.Fatal(err)
	}
	// A failure here is the regression this test is for: every boot would
	// fall back to the slower bzImage path without a word.
	vmlinux, err := decompressPayload(payload)
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	if err := checkPVH(vmlinux); err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	v, err := BzImageVersion(image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(vmlinux, []byte("Linux version "+v+" ")) {
		t.Errorf("the vmlinux of %s does not hold its banner %q", k, "Linux version "+v)
	}
}
