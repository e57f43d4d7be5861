// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/verity"
)

// needTool skips a test when an external tool is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeSquashFS builds a small reproducible SquashFS image of a few files.
func makeSquashFS(t *testing.T) []byte {
	t.Helper()
	needTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "etc", "os-release"), []byte("ID=keel-test\n"))
	// Incompressible-ish content spreads the image over many blocks.
	big := make([]byte, 700<<10) // > 128 blocks: a two-level tree
	for i := range big {
		big[i] = byte(i*7919 + i>>8)
	}
	writeFile(t, filepath.Join(src, "big"), big)
	img := filepath.Join(dir, "root.squashfs")
	run(t, "mksquashfs", src, img, "-noappend", "-no-xattrs", "-all-root", "-mkfs-time", "0", "-noI", "-noD", "-quiet")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seal(t *testing.T, img []byte, o SealOptions) (*Header, []byte) {
	t.Helper()
	var out bytes.Buffer
	h, err := Seal(bytes.NewReader(img), int64(len(img)), o, &out)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return h, out.Bytes()
}

// TestSealVeritysetup is the interoperability test: the partition keel
// writes must satisfy veritysetup itself.
func TestSealVeritysetup(t *testing.T) {
	needTool(t, "veritysetup")
	img := makeSquashFS(t)
	key, pub := testKey(1)
	h, part := seal(t, img, SealOptions{Key: key, Created: time.Unix(1700000000, 0)})

	dir := t.TempDir()
	imgPath, partPath := filepath.Join(dir, "root.img"), filepath.Join(dir, "verity.img")
	writeFile(t, imgPath, img)
	writeFile(t, partPath, part)
	root := hex.EncodeToString(h.RootHash)
	run(t, "veritysetup", "verify", imgPath, partPath, root, "--hash-offset=4096")

	if h.ImageID != root[:12] {
		t.Errorf("default image id %q, want the root hash prefix %q", h.ImageID, root[:12])
	}
	got, ok, err := VerifyPartition(bytes.NewReader(img), bytes.NewReader(part), []ed25519.PublicKey{pub})
	if err != nil || !ok || got.ImageID != h.ImageID {
		t.Fatalf("VerifyPartition = %+v, %v, %v; want authenticated %q", got, ok, err, h.ImageID)
	}

	// A flipped byte deep in the image: both veritysetup and keel refuse.
	img[len(img)/2] ^= 1
	writeFile(t, imgPath, img)
	if out, err := exec.Command("veritysetup", "verify", imgPath, partPath, root, "--hash-offset=4096").CombinedOutput(); err == nil {
		t.Errorf("veritysetup verify accepted a corrupted image:\n%s", out)
	}
	if _, _, err := VerifyPartition(bytes.NewReader(img), bytes.NewReader(part), nil); !errors.Is(err, verity.ErrMismatch) {
		t.Errorf("VerifyPartition(corrupted image): error %v, want verity.ErrMismatch", err)
	}
}

// TestSealMatchesVeritysetupFormat checks the hash device byte for byte
// against `veritysetup format` with the same salt and uuid.
func TestSealMatchesVeritysetupFormat(t *testing.T) {
	needTool(t, "veritysetup")
	img := makeSquashFS(t)
	salt := bytes.Repeat([]byte{0x42}, 32)
	uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 1, 2, 3, 4, 5, 6, 7}
	h, part := seal(t, img, SealOptions{Salt: salt, UUID: &uuid})

	dir := t.TempDir()
	imgPath, hashPath := filepath.Join(dir, "root.img"), filepath.Join(dir, "hash.img")
	writeFile(t, imgPath, img)
	out := run(t, "veritysetup", "format", imgPath, hashPath,
		"--salt="+hex.EncodeToString(salt), "--uuid="+verity.FormatUUID(uuid))
	if !strings.Contains(out, hex.EncodeToString(h.RootHash)) {
		t.Errorf("veritysetup format root hash differs from %x:\n%s", h.RootHash, out)
	}
	want, err := os.ReadFile(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part[HashOffset:], want) {
		t.Errorf("hash device differs from veritysetup format's (%d vs %d bytes)", len(part)-HashOffset, len(want))
	}
	if h.HashSize != uint64(len(want)) {
		t.Errorf("header hash size %d, veritysetup wrote %d", h.HashSize, len(want))
	}
}

func TestSealReproducible(t *testing.T) {
	img := makeSquashFS(t)
	key, _ := testKey(1)
	o := SealOptions{Key: key, Created: time.Unix(1700000000, 0), Reproducible: true}
	_, a := seal(t, img, o)
	_, b := seal(t, img, o)
	if !bytes.Equal(a, b) {
		t.Errorf("two reproducible seals of one image differ")
	}
	o.Reproducible = false
	h1, _ := seal(t, img, o)
	h2, _ := seal(t, img, o)
	if bytes.Equal(h1.Verity.Salt, h2.Verity.Salt) || h1.Verity.UUID == h2.Verity.UUID {
		t.Errorf("two non-reproducible seals share salt %x or uuid %x", h1.Verity.Salt, h1.Verity.UUID)
	}
}

func TestSealRejects(t *testing.T) {
	padded := func(b []byte, n int) []byte { return append(b, make([]byte, n-len(b))...) }
	withUsed := func(b []byte, used byte) []byte { b[40] = used; b[41] = 0x40; return b }
	squash := padded([]byte("hsqs"), 8192)
	tests := []struct {
		name string
		img  []byte
		o    SealOptions
		want string
	}{
		{"ext4", padded([]byte("not a squashfs"), 8192), SealOptions{}, "not a SquashFS image"},
		{"tiny", []byte("hs"), SealOptions{}, "read SquashFS superblock"},
		{"unpadded", padded([]byte("hsqs"), 5000), SealOptions{}, "expected a multiple of 4096: build it with mksquashfs's default padding"},
		{"truncated", withUsed(padded([]byte("hsqs"), 8192), 1), SealOptions{}, "SquashFS says it uses 16385 bytes but the image is 8192 bytes"},
		{"image id", squash, SealOptions{ImageID: "my image"}, "expected printable ASCII without spaces"},
		{"key", squash, SealOptions{Key: make([]byte, 32)}, "signing key is 32 bytes, expected 64"},
		{"salt", squash, SealOptions{Salt: make([]byte, 300)}, "salt is 300 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Seal(bytes.NewReader(tt.img), int64(len(tt.img)), tt.o, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Seal: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestVerifyPartitionRejects(t *testing.T) {
	img := makeSquashFS(t)
	key, _ := testKey(1)
	_, other := testKey(2)
	_, part := seal(t, img, SealOptions{Key: key})
	tree := bytes.Clone(part)
	tree[len(tree)-1] ^= 1 // last hash block: the lowest level

	tests := []struct {
		name    string
		part    []byte
		trusted []ed25519.PublicKey
		want    string
	}{
		{"untrusted", part, []ed25519.PublicKey{other}, "not in the trusted set"},
		{"no header", make([]byte, len(part)), nil, "no keel slot header"},
		{"tree", tree, nil, "hash mismatch"},
		{"short", part[:100], nil, "read slot header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := VerifyPartition(bytes.NewReader(img), bytes.NewReader(tt.part), tt.trusted)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyPartition: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
