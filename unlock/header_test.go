// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   int
		err    string
	}{
		{header: "LUKS\xba\xbe\x00\x02", want: 2},
		{header: "LUKS\xba\xbe\x00\x01rest", want: 1},
		{header: "LUKS\xba\xbe\x00\x03", err: "version 3, expected 1 or 2"},
		{header: "LUKS\xba\xbe", err: "no LUKS header"},
		{header: "hsqs\x00\x00\x00\x00", err: "no LUKS header"},
		{header: "", err: "no LUKS header"},
	} {
		got, err := Version([]byte(tc.header))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.header, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v", tc.header, got, err)
		}
	}
	if !IsLUKS([]byte("LUKS\xba\xbe")) || IsLUKS([]byte("LUKS")) || IsLUKS(nil) {
		t.Error("IsLUKS")
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2")
	if err := os.WriteFile(v2, []byte("LUKS\xba\xbe\x00\x02"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Describe("data", v2); got != "data (LUKS2 "+v2+")" {
		t.Errorf("got %q", got)
	}
	if got := Describe("data", "/nonexistent"); got != "data (LUKS /nonexistent)" {
		t.Errorf("got %q", got)
	}
}

func FuzzVersion(f *testing.F) {
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Add([]byte("LUKS\xba\xbe\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Version(b)
		if err == nil && (v < 1 || v > 2 || !IsLUKS(b)) {
			t.Fatalf("version %d accepted for %q", v, b)
		}
	})
}

// testVolume returns a volume of testdata made by testdata/make.sh: its
// content, key and volume key.
func testVolume(t testing.TB, name string) (img, key, volumeKey []byte) {
	t.Helper()
	img, err := os.ReadFile(filepath.Join("testdata", name+".img"))
	if err != nil {
		t.Fatal(err)
	}
	key, err = os.ReadFile(filepath.Join("testdata", name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := os.ReadFile(filepath.Join("testdata", name+".volume-key"))
	if err != nil {
		t.Fatal(err)
	}
	volumeKey, err = hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	return img, key, volumeKey
}

// TestKnownVolumes opens the volumes in testdata, so that key recovery is
// checked against cryptsetup's even where cryptsetup is not installed.
func TestKnownVolumes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sectorSize uint64
	}{
		{name: "argon2id", sectorSize: 512},
		{name: "pbkdf2-sha512", sectorSize: 4096},
	} {
		img, key, want := testVolume(t, tc.name)
		p := filepath.Join(t.TempDir(), "img")
		must(t, os.WriteFile(p, img, 0o600))
		fm := &fakeMapper{}
		o := Opener{DevDir: t.TempDir(), Mapper: fm}
		if _, err := o.Open(p, "k", Key{Secret: key, Kind: KeyFile}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		v := fm.created[0]
		if !bytes.Equal(v.Key, want) || v.Offset != 163840 || v.Size != 4096 || v.SectorSize != tc.sectorSize || v.Cipher != "aes-xts-plain64" {
			t.Errorf("%s: volume %+v, want key %x", tc.name, v, want)
		}
		_, err := o.Open(p, "k", Key{Secret: key[:len(key)-1], Kind: Passphrase})
		if !errors.Is(err, ErrNoKeySlot) {
			t.Errorf("%s: key without its newline: err = %v", tc.name, err)
		}
	}
}

// damage flips a byte of the JSON area of the header copy at byte at.
func damage(dev []byte, at int) { dev[at+binHeaderSize+10] ^= 0x20 }

// openBytes opens the volume dev with key, returning its volume key.
func openBytes(t *testing.T, dev, key []byte) ([]byte, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	must(t, os.WriteFile(p, dev, 0o600))
	fm := &fakeMapper{}
	o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: fm}
	if _, err := o.Open(p, "k", Key{Secret: key, Kind: KeyFile}); err != nil {
		return nil, err
	}
	return fm.created[0].Key, nil
}

// failingStart is a device whose first sector cannot be read (EIO).
type failingStart struct{ r *bytes.Reader }

func (f failingStart) ReadAt(p []byte, off int64) (int, error) {
	if off < 512 {
		return 0, syscall.EIO
	}
	return f.r.ReadAt(p, off)
}

// TestUnreadablePrimaryTriesSecondary: a first sector that cannot be read
// leaves the secondary copy, as cryptsetup uses it; the read error ended
// the unlock (found by a hunting helper).
func TestUnreadablePrimaryTriesSecondary(t *testing.T) {
	img, _, _ := testVolume(t, "argon2id")
	h, err := readLUKS2(failingStart{bytes.NewReader(img)}, int64(len(img)))
	if err != nil || h.offset != 16384 {
		t.Fatalf("primary unreadable, secondary intact: %+v, %v; want the secondary at 16384", h, err)
	}
	damage(img, 16384)
	if _, err := readLUKS2(failingStart{bytes.NewReader(img)}, int64(len(img))); err == nil ||
		!strings.Contains(err.Error(), "primary header at byte 0: reading it: input/output error; secondary header at byte 16384: checksum mismatch") {
		t.Errorf("both unusable: %v; want both named", err)
	}
}

func TestHeaderCopies(t *testing.T) {
	img, key, want := testVolume(t, "argon2id")
	for _, tc := range []struct {
		name string
		edit func(dev []byte)
		err  string
	}{
		{name: "both valid"},
		{name: "primary damaged", edit: func(dev []byte) { damage(dev, 0) }},
		{name: "primary wiped", edit: func(dev []byte) { clear(dev[:16384]) }},
		{name: "primary hdr_size wrong", edit: func(dev []byte) { dev[offHdrSize+5] = 0x80 }},
		{name: "secondary damaged", edit: func(dev []byte) { damage(dev, 16384) }},
		{name: "both damaged", edit: func(dev []byte) { damage(dev, 0); damage(dev, 16384) },
			err: "no valid LUKS2 header: primary header at byte 0: checksum mismatch: the header area hashes to "},
		{name: "both damaged (secondary named)", edit: func(dev []byte) { damage(dev, 0); damage(dev, 16384) },
			err: "; secondary header at byte 16384: checksum mismatch: the header area hashes to "},
		{name: "primary wiped, secondary damaged", edit: func(dev []byte) { clear(dev[:16384]); damage(dev, 16384) },
			err: `primary header at byte 0: no LUKS2 header magic: expected "LUKS\xba\xbe", found "\x00\x00\x00\x00\x00\x00"; secondary header at byte 16384: checksum mismatch`},
		{name: "checksum algorithm", edit: func(dev []byte) { copy(dev[offCsumAlg:], "sha512"); dev[16384+offCsumAlg+4] = '1' },
			err: `primary header at byte 0: checksum algorithm "sha512" is not supported, expected sha256; secondary header at byte 16384: checksum algorithm "sha216" is not supported, expected sha256`},
		{name: "secondary at the wrong offset", edit: func(dev []byte) { damage(dev, 0); dev[16384+offHdrOffset+6] = 1 },
			err: "secondary header at byte 16384: hdr_offset 256, expected 16384, where this copy is"},
		{name: "version 3", edit: func(dev []byte) { damage(dev, 0); dev[16384+offVersion+1] = 3 },
			err: "secondary header at byte 16384: version 3, expected 2"},
	} {
		dev := bytes.Clone(img)
		if tc.edit != nil {
			tc.edit(dev)
		}
		got, err := openBytes(t, dev, key)
		if tc.err == "" {
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: key %x, err %v", tc.name, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v\nwant %q", tc.name, err, tc.err)
		}
	}
}

// TestNewerCopy checks that of two valid copies the one with the higher
// seqid counts: a key added after the older copy was written opens the
// volume only if the newer copy is read.
func TestNewerCopy(t *testing.T) {
	keyFile := writeKey(t, "first")
	img := luksVolume(t, keyFile, pbkdf2Opts...)
	old, err := os.ReadFile(img)
	must(t, err)
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "-q", "--key-file", keyFile}, append(pbkdf2Opts, img, writeKey(t, "second"))...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	cur, err := os.ReadFile(img)
	must(t, err)
	hdrSize := 16384
	if binary.BigEndian.Uint64(cur[offSeqID:]) <= binary.BigEndian.Uint64(old[offSeqID:]) {
		t.Fatal("luksAddKey did not raise the seqid")
	}
	for _, tc := range []struct {
		name string
		dev  []byte
	}{
		{name: "older primary", dev: append(append(bytes.Clone(old[:hdrSize]), cur[hdrSize:2*hdrSize]...), cur[2*hdrSize:]...)},
		{name: "older secondary", dev: append(append(bytes.Clone(cur[:hdrSize]), old[hdrSize:2*hdrSize]...), cur[2*hdrSize:]...)},
	} {
		if _, err := openBytes(t, tc.dev, []byte("second")); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// With the newer secondary damaged, the older primary is all there is.
	dev := append(append(bytes.Clone(old[:hdrSize]), cur[hdrSize:2*hdrSize]...), cur[2*hdrSize:]...)
	damage(dev, hdrSize)
	if _, err := openBytes(t, dev, []byte("second")); !errors.Is(err, ErrNoKeySlot) {
		t.Errorf("older primary alone: err = %v", err)
	}
}

// FuzzReadLUKS2 feeds damaged devices to readLUKS2 and unlockVolume:
// whatever the bytes, the result is an error or a volume, never a panic.
// The seeds are cryptsetup's volumes in testdata. Their inputs are large,
// so minimizing one takes the fuzzer long: -fuzzminimizetime=2s keeps it
// fuzzing. sealed says which copies' checksums are recomputed over the
// fuzzer's bytes (resealLUKS2), as a hostile writer computes them: without,
// a mutated header byte fails its copy's checksum, the other copy is read,
// and the binary header and JSON read are always a seed's own.
func FuzzReadLUKS2(f *testing.F) {
	for _, name := range []string{"argon2id", "pbkdf2-sha512"} {
		img, _, _ := testVolume(f, name)
		f.Add(img, int64(0), uint8(0))
		f.Add(img[:32768], int64(1<<20), uint8(0))
		f.Add(img, int64(0), uint8(sealPrimary|sealSecondary))
	}
	f.Add(append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 600)...), int64(0), uint8(0))
	f.Add(append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 600)...), int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, dev []byte, extra int64, sealed uint8) {
		// extra zero bytes after dev make the device larger than the input.
		r := zeroPadded{resealLUKS2(dev, sealed), int64(len(dev)) + max(0, min(extra, 1<<30))}
		h, err := readLUKS2(r, r.size)
		if err != nil {
			return
		}
		if h.meta == nil || (h.offset != 0 && h.offset != h.hdrSize) {
			t.Fatalf("header %+v", h)
		}
		if cheap(h.meta) {
			v, err := unlockVolume(r, r.size, h, Key{Secret: []byte("x"), Kind: Passphrase})
			if err == nil && (len(v.Key) == 0 || v.Offset+v.Size > uint64(r.size)) {
				t.Fatalf("volume %+v", v)
			}
		}
	})
}

// The header copies whose checksum resealLUKS2 recomputes.
const (
	sealPrimary = 1 << iota
	sealSecondary
)

// resealLUKS2 is a copy of dev with the checksum of the header copies that
// which names recomputed: the primary at byte 0, the secondaries where
// readLUKS2 looks for them (16 KiB to 4 MiB). A copy without its magic or
// with an hdr_size readLUKS2 refuses is left alone, and so is one that
// ends past dev: the zeros a fuzz target's device goes on with are not
// summed.
func resealLUKS2(dev []byte, which uint8) []byte {
	dev = bytes.Clone(dev)
	for at := 0; at <= maxHdrSize; at = max(minHdrSize, 2*at) {
		magic, bit := secondaryMagic, sealSecondary
		if at == 0 {
			magic, bit = Magic, sealPrimary
		}
		if which&uint8(bit) == 0 || len(dev) < at+binHeaderSize || string(dev[at:at+6]) != magic {
			continue
		}
		if n := binary.BigEndian.Uint64(dev[at+offHdrSize:]); validHdrSize(n) && n <= uint64(len(dev)-at) {
			sealCopy(dev[at : at+int(n)])
		}
	}
	return dev
}

// cheap tells whether trying every key slot of m costs little enough for
// a fuzz target.
func cheap(m *metadata) bool {
	for _, k := range m.keyslots {
		if k.kdf.iterations > 10000 || uint64(k.kdf.time)*uint64(k.kdf.memory) > 1<<12 || k.kdf.memory > 1<<10 {
			return false
		}
	}
	for _, d := range m.digests {
		if d.iterations > 10000 {
			return false
		}
	}
	return true
}

// zeroPadded is a device of size bytes that starts with b and goes on
// with zeros.
type zeroPadded struct {
	b    []byte
	size int64
}

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-off))
	clear(p[:n])
	if off < int64(len(z.b)) {
		copy(p[:n], z.b[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
