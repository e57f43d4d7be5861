// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const fsUUID = "5b0f0a2e-6c1d-4f3e-8a9b-0c1d2e3f4a5b"

// fsImage describes how a tool makes a test image and what Probe must find.
type fsImage struct {
	name string
	tool string
	make func(t *testing.T, dir string) string
	want FS
}

func mkfsImage(size int64, tool string, args ...string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		p := sparseFile(t, dir, "fs.img", size)
		run(t, "", tool, append(args, p)...)
		return p
	}
}

func squashfsImage(t *testing.T, dir string) string {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "fs.img")
	run(t, "", "mksquashfs", src, p, "-quiet", "-noappend", "-no-progress")
	return p
}

func luksImage(typ string, extra ...string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		p := sparseFile(t, dir, "luks.img", 32<<20)
		key := filepath.Join(dir, "key")
		if err := os.WriteFile(key, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"luksFormat", "--batch-mode", "--type", typ, "--pbkdf", "pbkdf2",
			"--pbkdf-force-iterations", "1000", "--uuid", fsUUID, "--key-file", key}, extra...)
		run(t, "", "cryptsetup", append(args, p)...)
		return p
	}
}

func toolImages() []fsImage {
	return []fsImage{
		{"ext4", "mkfs.ext4", mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-L", "data", "-U", fsUUID), FS{"ext4", fsUUID, "data"}},
		{"ext3", "mkfs.ext4", mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-t", "ext3", "-U", fsUUID), FS{"ext3", fsUUID, ""}},
		{"ext2", "mkfs.ext4", mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-t", "ext2", "-L", "boot", "-U", fsUUID), FS{"ext2", fsUUID, "boot"}},
		{"btrfs", "mkfs.btrfs", mkfsImage(128<<20, "mkfs.btrfs", "-q", "-f", "-L", "data", "-U", fsUUID), FS{"btrfs", fsUUID, "data"}},
		{"squashfs", "mksquashfs", squashfsImage, FS{"squashfs", "", ""}},
		{"luks2", "cryptsetup", luksImage("luks2", "--label", "crypt-data"), FS{"crypto_LUKS", fsUUID, "crypt-data"}},
		{"luks1", "cryptsetup", luksImage("luks1"), FS{"crypto_LUKS", fsUUID, ""}},
		{"vfat", "mkfs.vfat", mkfsImage(8<<20, "mkfs.vfat", "-n", "ESP", "-i", "1234ABCD"), FS{"vfat", "1234-ABCD", "ESP"}},
		{"xfs", "mkfs.xfs", mkfsImage(320<<20, "mkfs.xfs", "-q", "-f", "-L", "data", "-m", "uuid="+fsUUID), FS{"xfs", fsUUID, "data"}},
	}
}

// TestProbeMatchesBlkid makes real images with the tools and checks that
// Probe agrees with blkid on type, UUID and label.
func TestProbeMatchesBlkid(t *testing.T) {
	for _, im := range toolImages() {
		t.Run(im.name, func(t *testing.T) {
			needTool(t, im.tool)
			img := im.make(t, t.TempDir())
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Probe(f)
			if err != nil {
				t.Fatal(err)
			}
			if got != im.want {
				t.Errorf("Probe = %+v, want %+v", got, im.want)
			}
			kv := blkid(t, img)
			if b := (FS{kv["TYPE"], kv["UUID"], kv["LABEL"]}); got != b {
				t.Errorf("Probe = %+v, blkid says %+v", got, b)
			}
		})
	}
}

// Superblocks built by hand for what the tools here cannot make and for
// the cases blkid decides by feature bits.
func extSB(compat, incompat, roCompat uint32) []byte {
	d := make([]byte, 4096)
	sb := d[1024:]
	binary.LittleEndian.PutUint16(sb[56:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[92:], compat)
	binary.LittleEndian.PutUint32(sb[96:], incompat)
	binary.LittleEndian.PutUint32(sb[100:], roCompat)
	copy(sb[104:], []byte{0x5b, 0x0f, 0x0a, 0x2e, 0x6c, 0x1d, 0x4f, 0x3e, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b})
	copy(sb[120:], "sixteen-byte-lbl")
	return d
}

func fatBootSector(fat32 bool, label string) []byte {
	d := make([]byte, 1024)
	d[0], d[1], d[2] = 0xEB, 0x58, 0x90
	binary.LittleEndian.PutUint16(d[11:], 512)
	d[13] = 8
	binary.LittleEndian.PutUint16(d[14:], 32)
	d[16] = 2
	ext := d[36:]
	if fat32 {
		ext = d[64:]
	} else {
		binary.LittleEndian.PutUint16(d[22:], 200)
	}
	ext[2] = 0x29
	binary.LittleEndian.PutUint32(ext[3:], 0xDEADBEEF)
	copy(ext[7:18], label)
	copy(ext[18:26], "FAT32   ")
	d[510], d[511] = 0x55, 0xAA
	return d
}

func xfsSB() []byte {
	d := make([]byte, 512)
	copy(d, "XFSB")
	copy(d[32:], []byte{0x5b, 0x0f, 0x0a, 0x2e, 0x6c, 0x1d, 0x4f, 0x3e, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b})
	copy(d[108:], "scratch")
	return d
}

func TestProbeSynthetic(t *testing.T) {
	tests := []struct {
		name string
		img  []byte
		want FS
	}{
		{"ext2", extSB(0, 0x2, 0x1), FS{"ext2", fsUUID, "sixteen-byte-lbl"}},
		{"ext3", extSB(0x4, 0x2, 0x1), FS{"ext3", fsUUID, "sixteen-byte-lbl"}},
		{"ext4 by extents", extSB(0x4, 0x2|0x40, 0x1), FS{"ext4", fsUUID, "sixteen-byte-lbl"}},
		{"ext4 by ro_compat", extSB(0x4, 0x2, 0x8), FS{"ext4", fsUUID, "sixteen-byte-lbl"}},
		{"jbd", extSB(0, 0x8, 0), FS{"jbd", fsUUID, "sixteen-byte-lbl"}},
		{"fat32", fatBootSector(true, "EFI        "), FS{"vfat", "DEAD-BEEF", "EFI"}},
		{"fat16 no name", fatBootSector(false, "NO NAME    "), FS{"vfat", "DEAD-BEEF", ""}},
		{"xfs", xfsSB(), FS{"xfs", fsUUID, "scratch"}},
	}
	for _, tt := range tests {
		got, err := Probe(bytes.NewReader(tt.img))
		if err != nil || got != tt.want {
			t.Errorf("%s: Probe = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestProbeUnknown(t *testing.T) {
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xAA // an MBR is not a FAT boot sector
	noFAT := fatBootSector(true, "X")
	copy(noFAT[82:], "NTFS    ")
	for name, img := range map[string][]byte{"empty": nil, "zeros": make([]byte, 70000), "mbr": mbr, "boot sector without FAT type": noFAT} {
		if fs, err := Probe(bytes.NewReader(img)); !errors.Is(err, ErrUnknownFS) {
			t.Errorf("%s: Probe = %+v, %v; want ErrUnknownFS", name, fs, err)
		}
	}
}

// errReader fails every read, like a device returning EIO.
type errReader struct{}

func (errReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("input/output error") }

// countingErrReader fails every read and counts them.
type countingErrReader struct{ n *int }

func (c countingErrReader) ReadAt([]byte, int64) (int, error) {
	*c.n++
	return 0, errors.New("input/output error")
}

// TestProbeIOError: a device that fails its reads is an error, read once,
// not once per signature (a dead disk answers each read after its
// timeouts and retries: fifteen reads cost fifteen of them).
func TestProbeIOError(t *testing.T) {
	if _, err := Probe(errReader{}); err == nil || errors.Is(err, ErrUnknownFS) {
		t.Errorf("Probe on a failing device: err = %v, want the I/O error", err)
	}
	var n int
	if _, err := Probe(countingErrReader{&n}); err == nil || n != 1 {
		t.Errorf("Probe on a failing device: err = %v after %d reads, want the I/O error after one", err, n)
	}
}

// failingStart is a device whose reads before byte end fail (a bad first
// sector).
type failingStart struct {
	r   *bytes.Reader
	end int64
}

func (f failingStart) ReadAt(p []byte, off int64) (int, error) {
	if off < f.end {
		return 0, errors.New("input/output error")
	}
	return f.r.ReadAt(p, off)
}

// TestProbeLUKS2BySecondHeader: a LUKS2 volume whose first sector is
// wiped or unreadable is known by its second header (UUID and label
// included), as cryptsetup opens it, by ProbeLUKS2Second, which the data
// partition's identification uses; Probe, which matching uses, does not
// look there. A file system made over a LUKS2 volume, or a device with a
// signature keel does not probe (swap, whose pages anyone can fill), is
// never taken for one; with both headers gone nothing is found.
func TestProbeLUKS2BySecondHeader(t *testing.T) {
	img, err := os.ReadFile("../unlock/testdata/argon2id.img")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Probe(bytes.NewReader(img))
	if err != nil || whole.Type != "crypto_LUKS" || whole.UUID == "" {
		t.Fatalf("intact volume: %+v, %v", whole, err)
	}
	second := func(r io.ReaderAt) FS {
		t.Helper()
		fs, ok, err := ProbeLUKS2Second(r)
		if err != nil || ok != (fs != FS{}) {
			t.Fatalf("ProbeLUKS2Second = %+v, %v, %v", fs, ok, err)
		}
		return fs
	}
	wiped := bytes.Clone(img)
	clear(wiped[:512])
	if got := second(bytes.NewReader(wiped)); got != whole {
		t.Errorf("first sector wiped: %+v; want %+v", got, whole)
	}
	if got, err := Probe(bytes.NewReader(wiped)); !errors.Is(err, ErrUnknownFS) {
		t.Errorf("Probe of the wiped volume: %+v, %v; want nothing: matching does not read second headers", got, err)
	}
	if got := second(failingStart{bytes.NewReader(img), 4096}); got != whole {
		t.Errorf("first sectors unreadable: %+v; want %+v", got, whole)
	}
	formatted := bytes.Clone(wiped)
	copy(formatted[1024:], extSB(0x4, 0x2|0x40, 0x1)[1024:2048])
	if got := second(bytes.NewReader(formatted)); got != (FS{}) {
		t.Errorf("ext4 made over the volume: %+v; want no volume", got)
	}
	swap := bytes.Clone(wiped)
	copy(swap[4096-10:], "SWAPSPACE2")
	swap[1024] = 1 // version
	if got := second(bytes.NewReader(swap)); got != (FS{}) {
		t.Errorf("a swap area with a page holding a second header: %+v; want no volume", got)
	}
	both := bytes.Clone(wiped)
	clear(both[16<<10 : 16<<10+512])
	if got := second(bytes.NewReader(both)); got != (FS{}) {
		t.Errorf("both headers wiped: %+v; want nothing", got)
	}
	// A second header that is not where it says it is, is not one.
	moved := make([]byte, 64<<10)
	copy(moved[32<<10:], img[16<<10:16<<10+4096])
	if got := second(bytes.NewReader(moved)); got != (FS{}) {
		t.Errorf("second header at the wrong place: %+v; want nothing", got)
	}
	if _, err := Probe(failingStart{bytes.NewReader(img), 4096}); err == nil {
		t.Error("Probe of an unreadable start: want the read error (one read, not one per signature)")
	}
}

// windows places the fuzz input at each offset a probe reads from, so a
// small input can reach the ext, btrfs and boot-sector probes alike.
type windows []byte

func (w windows) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for _, base := range []int64{0, 1024, 16 << 10, 65536} {
		if off >= base && off < base+int64(len(w)) {
			copy(p, w[off-base:])
		}
	}
	return len(p), nil
}

func FuzzProbe(f *testing.F) {
	f.Add(extSB(0x4, 0x42, 0x1)[1024:1400])
	f.Add(fatBootSector(true, "EFI"))
	f.Add(xfsSB())
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	second := make([]byte, 264)
	copy(second, "SKUL\xba\xbe\x00\x02\x00\x00\x00\x00\x00\x00\x40\x00")
	second[256+6] = 0x40
	f.Add(second)
	f.Add([]byte("hsqs"))
	btrfs := make([]byte, 600)
	copy(btrfs[64:], "_BHRfS_M")
	f.Add(btrfs)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range []interface {
			ReadAt([]byte, int64) (int, error)
		}{bytes.NewReader(b), windows(b)} {
			fs, err := Probe(r)
			if err == nil && fs.Type == "" {
				t.Fatalf("Probe(%q) found a filesystem without a type", b)
			}
			if fs, ok, err := ProbeLUKS2Second(r); ok && (err != nil || fs.Type != "crypto_LUKS") {
				t.Fatalf("ProbeLUKS2Second(%q) = %+v, %v", b, fs, err)
			}
		}
	})
}
