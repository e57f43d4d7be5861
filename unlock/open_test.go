// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"
)

// fakeMapper records the volumes it would map, with copies of their keys
// (Open zeroes the key once CreateCrypt returns).
type fakeMapper struct {
	created []Volume
	keys    [][]byte // the volume key given to each CreateCrypt
	removed []string
}

func (f *fakeMapper) CreateCrypt(name string, v *Volume) (uint64, error) {
	c := *v
	c.Key = bytes.Clone(v.Key)
	f.created = append(f.created, c)
	f.keys = append(f.keys, v.Key) // the caller's slice: zeroed after return
	return unix.Mkdev(253, uint32(len(f.created))), nil
}

func (f *fakeMapper) Remove(name string) error {
	f.removed = append(f.removed, name)
	return nil
}

func needCryptsetup(t *testing.T) string {
	t.Helper()
	cs, err := exec.LookPath("cryptsetup")
	if err != nil {
		t.Skip("cryptsetup not installed")
	}
	return cs
}

// luksVolume formats a 20 MiB file as LUKS2 with cryptsetup, unlocked by
// keyFile, with the extra cryptsetup options given (the KDF).
func luksVolume(t *testing.T, keyFile string, opts ...string) string {
	t.Helper()
	return luksVolumeSize(t, 20<<20, keyFile, opts...)
}

func luksVolumeSize(t *testing.T, size int64, keyFile string, opts ...string) string {
	t.Helper()
	cs := needCryptsetup(t)
	img := filepath.Join(t.TempDir(), "luks.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, size))
	args := append([]string{"luksFormat", "--type", "luks2", "-q"}, opts...)
	if out, err := exec.Command(cs, append(args, img, keyFile)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup luksFormat: %v\n%s", err, out)
	}
	return img
}

// cryptsetupKey returns the volume key of img as cryptsetup recovers it
// with keyFile.
func cryptsetupKey(t *testing.T, img, keyFile string) []byte {
	t.Helper()
	out, err := exec.Command(needCryptsetup(t), "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", keyFile, img).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksDump --dump-volume-key: %v\n%s", err, out)
	}
	return parseKeyDump(t, string(out))
}

// parseKeyDump reads the hex bytes after "MK dump:" (cryptsetup 2.6) or
// "Volume key:" in luksDump's output: the rest of that line and the
// indented lines after it.
func parseKeyDump(t *testing.T, out string) []byte {
	t.Helper()
	var hexDigits strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(line, "MK dump:"); ok {
			in, line = true, rest
		} else if _, rest, ok := strings.Cut(line, "Volume key:"); ok && !strings.Contains(line, "bits") {
			in, line = true, rest
		} else if in && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			break
		}
		if in {
			hexDigits.WriteString(strings.Join(strings.Fields(line), ""))
		}
	}
	key, err := hex.DecodeString(hexDigits.String())
	if err != nil || len(key) == 0 {
		t.Fatalf("no volume key in cryptsetup's output (%v):\n%s", err, out)
	}
	return key
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(p, []byte(secret), 0o600))
	return p
}

var (
	pbkdf2Opts = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
	argonOpts  = []string{"--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
)

func TestOpenCryptsetupVolumes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []string
		secret string // the key file's content: binary, or a passphrase without newline
	}{
		{name: "pbkdf2 key file", opts: pbkdf2Opts, secret: "\x00\x01binary key file\xff\n"},
		{name: "argon2id passphrase", opts: argonOpts, secret: "correct horse battery staple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := writeKey(t, tc.secret)
			img := luksVolume(t, keyFile, tc.opts...)
			fm := &fakeMapper{}
			o := Opener{Role: "data", DevDir: filepath.Join(t.TempDir(), "mapper"), Mapper: fm}

			_, err := o.Open(img, "keel-data", Key{Secret: []byte(tc.secret + "x"), Kind: Passphrase})
			want := "data (LUKS2 " + img + "): no key slot matches the passphrase"
			if err == nil || err.Error() != want || !errors.Is(err, ErrNoKeySlot) {
				t.Errorf("wrong key: err = %v, want %q", err, want)
			}
			if len(fm.created) != 0 {
				t.Fatal("wrong key mapped a device")
			}

			path, err := o.Open(img, "keel-data", Key{Secret: []byte(tc.secret), Kind: KeyFile})
			must(t, err)
			if path != filepath.Join(o.DevDir, "keel-data") {
				t.Errorf("path %s", path)
			}
			var st unix.Stat_t
			must(t, unix.Stat(path, &st))
			if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(253, 1) {
				t.Errorf("node mode %o rdev %d", st.Mode, st.Rdev)
			}
			v := fm.created[0]
			if v.Device != img || v.Offset != 16<<20 || v.Size != 4<<20 || v.Cipher != "aes-xts-plain64" ||
				(v.SectorSize != 512 && v.SectorSize != 4096) || v.IVTweak != 0 || len(v.Flags) != 0 || len(v.UUID) != 36 {
				t.Errorf("volume %+v", v)
			}
			if want := cryptsetupKey(t, img, keyFile); !bytes.Equal(v.Key, want) {
				t.Errorf("volume key %x, cryptsetup says %x", v.Key, want)
			}
			if !bytes.Equal(fm.keys[0], make([]byte, len(v.Key))) {
				t.Errorf("the volume key was not zeroed after mapping: %x", fm.keys[0])
			}
			// A node left for another device is refused, and the device
			// just made is removed again.
			_, err = o.Open(img, "keel-data", Key{Secret: []byte(tc.secret), Kind: KeyFile})
			if err == nil || !strings.Contains(err.Error(), "exists and is not block device 253:2") {
				t.Errorf("stale node: err = %v", err)
			}
			if len(fm.removed) != 1 || fm.removed[0] != "keel-data" {
				t.Errorf("removed %v after the node failed", fm.removed)
			}
			must(t, o.Close("keel-data"))
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("node left: %v", err)
			}
		})
	}
}

// TestVolumeKeys checks the recovered volume key against cryptsetup's for
// each KDF, hash and key size keel supports, and the volume's layout.
func TestVolumeKeys(t *testing.T) {
	small := []string{"--luks2-metadata-size", "32768", "--luks2-keyslots-size", "262144", "--offset", "640"}
	for _, tc := range []struct {
		name       string
		opts       []string
		sectorSize uint64
		offset     uint64
	}{
		{name: "pbkdf2 sha256", opts: []string{"--pbkdf", "pbkdf2", "--hash", "sha256", "--pbkdf-force-iterations", "1000"}},
		{name: "pbkdf2 sha512 512-bit key", opts: []string{"--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000", "--key-size", "512"}},
		{name: "pbkdf2 sha1 256-bit key", opts: []string{"--pbkdf", "pbkdf2", "--hash", "sha1", "--pbkdf-force-iterations", "1000", "--key-size", "256"}},
		{name: "argon2i", opts: []string{"--pbkdf", "argon2i", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2"}},
		{name: "argon2id 256-bit key", opts: []string{"--pbkdf", "argon2id", "--pbkdf-memory", "1024", "--pbkdf-force-iterations", "5", "--pbkdf-parallel", "4", "--key-size", "256"}},
		{name: "sector size 4096", opts: pbkdf2Opts, sectorSize: 4096},
		{name: "small metadata and keyslots areas", opts: append(small, pbkdf2Opts...), offset: 2*32768 + 262144},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := writeKey(t, "passphrase for "+tc.name)
			ss := max(tc.sectorSize, 512)
			img := luksVolume(t, keyFile, append([]string{"--sector-size", fmt.Sprint(ss)}, tc.opts...)...)
			fm := &fakeMapper{}
			o := Opener{DevDir: t.TempDir(), Mapper: fm}
			_, err := o.Open(img, "v", Key{Secret: []byte("passphrase for " + tc.name), Kind: Passphrase})
			must(t, err)
			v := fm.created[0]
			want := cryptsetupKey(t, img, keyFile)
			if !bytes.Equal(v.Key, want) {
				t.Errorf("volume key %x, cryptsetup says %x", v.Key, want)
			}
			off := tc.offset
			if off == 0 {
				off = 16 << 20 // cryptsetup's default
			}
			if v.SectorSize != ss || v.Offset != off || v.Size != 20<<20-off {
				t.Errorf("sector size %d, offset %d, size %d; want %d, %d, %d", v.SectorSize, v.Offset, v.Size, ss, off, 20<<20-off)
			}
			if len(v.Flags) != 0 {
				t.Errorf("flags %q", v.Flags)
			}
		})
	}
}

// TestOpenSecondKeySlot opens a volume whose passphrase is in key slot 1.
func TestOpenSecondKeySlot(t *testing.T) {
	keyFile := writeKey(t, "first")
	img := luksVolume(t, keyFile, pbkdf2Opts...)
	second := writeKey(t, "second")
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "-q", "--key-file", keyFile}, append(pbkdf2Opts, img, second)...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	fm := &fakeMapper{}
	o := Opener{DevDir: t.TempDir(), Mapper: fm}
	if _, err := o.Open(img, "d", Key{Secret: []byte("second"), Kind: Passphrase}); err != nil {
		t.Fatal(err)
	}
	if want := cryptsetupKey(t, img, second); !bytes.Equal(fm.created[0].Key, want) {
		t.Errorf("volume key %x, cryptsetup says %x", fm.created[0].Key, want)
	}
	_, err := o.Open(img, "e", Key{Secret: []byte("third"), Kind: KeyFile})
	if want := "e (LUKS2 " + img + "): no key slot matches the key file"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q (Role defaults to the dm name)", err, want)
	}
}

func TestOpenBadNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "..", "a b", strings.Repeat("x", 128)} {
		if _, err := (Opener{Mapper: &fakeMapper{}}).Open("/dev/null", name, Key{}); err == nil || !strings.Contains(err.Error(), "device name") {
			t.Errorf("%q: err = %v", name, err)
		}
	}
}

func TestDMUUID(t *testing.T) {
	if got := dmUUID("9247bab6-9896-4d07-a969-ec26acbab27b", "keel-data"); got != "CRYPT-LUKS2-9247bab698964d07a969ec26acbab27b-keel-data" {
		t.Errorf("got %q", got)
	}
	if got := dmUUID("x y\x00", strings.Repeat("n", 127)); len(got) != unix.DM_UUID_LEN-1 || !strings.HasPrefix(got, "CRYPT-LUKS2--nnn") {
		t.Errorf("got %q (%d bytes)", got, len(got))
	}
}

// TestOpenWithoutDeviceMapper runs the kernel mapper where the kernel has
// no device-mapper, as an initramfs that failed to load dm_mod would: the
// error names the volume and the modules, and nothing is left behind.
func TestOpenWithoutDeviceMapper(t *testing.T) {
	devs, _ := os.ReadFile("/proc/devices")
	if strings.Contains(string(devs), "device-mapper") {
		t.Skip("the host kernel has device-mapper; the QEMU tests' LUKS boots open volumes through it, and TestMapKernel runs in their VM")
	}
	secret := "no dm"
	img := luksVolume(t, writeKey(t, secret), pbkdf2Opts...)
	o := Opener{Role: "data", DevDir: t.TempDir()}
	_, err := o.Open(img, "keel-data", Key{Secret: []byte(secret), Kind: KeyFile})
	want := "data (LUKS2 " + img + "): creating dm-crypt device keel-data (needs the dm_crypt, xts and ecb modules; the kernel log says more): "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
	if entries, _ := os.ReadDir(o.DevDir); len(entries) != 0 {
		t.Errorf("left %v in the device directory", entries)
	}
}

// TestOpenEncryptedInPlace opens an ext4 filesystem that cryptsetup
// encrypted in place (offline, as the QEMU tests make their LUKS data
// partitions) and decrypts sectors with the volume it recovers: key,
// cipher, offset and IVs must all be right to get the filesystem back.
func TestOpenEncryptedInPlace(t *testing.T) {
	for _, ss := range []string{"512", "4096"} {
		t.Run(ss, func(t *testing.T) { testOpenEncryptedInPlace(t, ss) })
	}
}

func testOpenEncryptedInPlace(t *testing.T, sectorSize string) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	cs := needCryptsetup(t)
	keyFile := writeKey(t, "in place")
	img := filepath.Join(t.TempDir(), "data.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 48<<20))
	if out, err := exec.Command(mkfs, "-q", "-F", "-b", "4096", img, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	plain, err := os.ReadFile(img)
	must(t, err)
	args := append([]string{"reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "16M", "--sector-size", sectorSize, "--key-file", keyFile, "-q"}, pbkdf2Opts...)
	if out, err := exec.Command(cs, append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup reencrypt: %v\n%s", err, out)
	}
	fm := &fakeMapper{}
	o := Opener{DevDir: t.TempDir(), Mapper: fm}
	_, err = o.Open(img, "d", Key{Secret: []byte("in place"), Kind: KeyFile})
	must(t, err)
	v := fm.created[0]
	if fmt.Sprint(v.SectorSize) != sectorSize {
		t.Errorf("sector size %d, want %s", v.SectorSize, sectorSize)
	}
	// Decrypting sectors of the volume gives the filesystem's bytes back.
	dev, err := os.ReadFile(img)
	must(t, err)
	c, err := xts.NewCipher(aes.NewCipher, v.Key)
	must(t, err)
	for _, at := range []uint64{0, 4096, 1 << 20, 32<<20 - 4096} {
		start := v.Offset + at
		buf := bytes.Clone(dev[start : start+v.SectorSize])
		// plain64 IVs count 512-byte sectors, plus the IV tweak.
		c.Decrypt(buf, buf, at/512+v.IVTweak)
		if !bytes.Equal(buf, plain[at:at+v.SectorSize]) {
			t.Errorf("filesystem byte %d: decrypted %x..., want %x...", at, buf[:16], plain[at:at+16])
		}
	}
	// The ext4 magic 0xEF53 at byte 56 of the superblock at byte 1024.
	if plain[1024+56] != 0x53 || plain[1024+57] != 0xef {
		t.Error("no ext4 magic in the filesystem")
	}
}
