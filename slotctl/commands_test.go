// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/slots"
	slotkeys "github.com/keel-boot/keel/slots/keys"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "signing.key")
	out := mustRun(t, nil, "keygen", "--out", key)
	priv, err := slotkeys.LoadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := slotkeys.LoadPublicKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Errorf("KEY.pub is not the public half of KEY")
	}
	id := slots.KeyID(pub)
	if !strings.Contains(out, "key id: "+hex.EncodeToString(id[:])) {
		t.Errorf("keygen output lacks the key id:\n%s", out)
	}
	for path, want := range map[string]os.FileMode{key: 0o600, key + ".pub": 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}

	r := slotctl(t, nil, "keygen", "--out", key)
	if r.code != 1 || !strings.Contains(r.stderr, "already exists (--force replaces it)") {
		t.Errorf("keygen over an existing key: exit %d, %s", r.code, r.stderr)
	}
	if again, _ := slotkeys.LoadPrivateKey(key); !again.Equal(priv) {
		t.Errorf("refused keygen still changed the key")
	}
	mustRun(t, nil, "keygen", "--out", key, "--force")
	if again, _ := slotkeys.LoadPrivateKey(key); again.Equal(priv) {
		t.Errorf("keygen --force kept the old key")
	}
}

// makeImage builds a small SquashFS image with mksquashfs.
func makeImage(t *testing.T, dir string) string {
	t.Helper()
	needTool(t, "mksquashfs")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "hello"), bytes.Repeat([]byte("keel "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "root.squashfs")
	cmd := exec.Command("mksquashfs", src, img, "-noappend", "-quiet", "-noI", "-noD")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func TestSealInspectVerify(t *testing.T) {
	dir := t.TempDir()
	img := makeImage(t, dir)
	key, other := filepath.Join(dir, "k"), filepath.Join(dir, "other")
	mustRun(t, nil, "keygen", "--out", key)
	mustRun(t, nil, "keygen", "--out", other)
	part := filepath.Join(dir, "verity.img")
	out := mustRun(t, nil, "seal", "--image", img, "--out", part, "--key", key, "--image-id", "test-1")
	if !strings.Contains(out, "image id:   test-1") {
		t.Errorf("seal output:\n%s", out)
	}

	var v headerView
	if err := json.Unmarshal([]byte(mustRun(t, nil, "inspect", part, "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.ImageID != "test-1" || !v.Signed || v.Created != "2027-01-15T08:00:00Z" || !strings.Contains(out, v.RootHash) {
		t.Errorf("inspect --json = %+v, seal said\n%s", v, out)
	}
	if text := mustRun(t, nil, "inspect", part); !strings.Contains(text, "root hash:       "+v.RootHash) {
		t.Errorf("inspect:\n%s", text)
	}
	if _, err := exec.LookPath("veritysetup"); err == nil {
		cmd := exec.Command("veritysetup", "verify", img, part, v.RootHash, "--hash-offset=4096")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("veritysetup verify: %v\n%s", err, b)
		}
	}

	ok := mustRun(t, nil, "verify", "--image", img, "--verity", part, "--trust", other+".pub", "--trust", key+".pub")
	if !strings.Contains(ok, "signed by trusted key") {
		t.Errorf("verify: %s", ok)
	}
	checkVerifyFails(t, img, part, other)
}

// checkVerifyFails expects verify to exit 1 with the reason.
func checkVerifyFails(t *testing.T, img, part, other string) {
	r := slotctl(t, nil, "verify", "--image", img, "--verity", part, "--trust", other+".pub")
	if r.code != 1 || !strings.Contains(r.stderr, "not in the trusted set") {
		t.Errorf("verify with another key: exit %d, %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = slotctl(t, nil, "verify", "--image", img, "--verity", part)
	if r.code != 1 || !strings.Contains(r.stderr, "hash mismatch") {
		t.Errorf("verify of a corrupted image: exit %d, %s", r.code, r.stderr)
	}
}

func TestSealReproducible(t *testing.T) {
	dir := t.TempDir()
	img := makeImage(t, dir)
	env := map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	mustRun(t, env, "seal", "--image", img, "--out", a)
	mustRun(t, env, "seal", "--image", img, "--out", b)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Errorf("two seals with SOURCE_DATE_EPOCH differ (%d, %d bytes)", len(ab), len(bb))
	}
	if out := mustRun(t, nil, "inspect", a); !strings.Contains(out, "2023-11-14T22:13:20Z") {
		t.Errorf("creation time is not SOURCE_DATE_EPOCH:\n%s", out)
	}
	r := slotctl(t, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "seal", "--image", img, "--out", a)
	if r.code != 1 || !strings.Contains(r.stderr, `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d, %s", r.code, r.stderr)
	}
}

func TestSealFlags(t *testing.T) {
	dir := t.TempDir()
	img := makeImage(t, dir)
	part := filepath.Join(dir, "v.img")
	mustRun(t, nil, "seal", "--image", img, "--out", part, "--salt", "-")
	var v headerView
	if err := json.Unmarshal([]byte(mustRun(t, nil, "inspect", "--json", part)), &v); err != nil {
		t.Fatal(err)
	}
	if v.Salt != "" || v.Signed || v.ImageID != v.RootHash[:12] {
		t.Errorf("seal --salt - without key: %+v; want no salt, unsigned, id = root hash prefix", v)
	}
	mustRun(t, nil, "seal", "--image", img, "--out", part, "--salt", "00ff")
	if out := mustRun(t, nil, "inspect", part); !strings.Contains(out, "salt:            00ff\n") {
		t.Errorf("seal --salt 00ff:\n%s", out)
	}
	r := slotctl(t, nil, "seal", "--image", img, "--out", part, "--salt", "xyz")
	if r.code != 2 || !strings.Contains(r.stderr, "expected hex digits") {
		t.Errorf("seal --salt xyz: exit %d, %s", r.code, r.stderr)
	}
	r = slotctl(t, nil, "inspect", img)
	if r.code != 1 || !strings.Contains(r.stderr, "no keel slot header") {
		t.Errorf("inspect of a squashfs: exit %d, %s", r.code, r.stderr)
	}
}
