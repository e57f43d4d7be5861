// SPDX-License-Identifier: Apache-2.0

package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFilesRoundTrip(t *testing.T) {
	key, pub := testKey(7)
	dir := t.TempDir()
	privPEM, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----")) || !bytes.HasPrefix(pubPEM, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("unexpected PEM types:\n%s\n%s", privPEM, pubPEM)
	}
	writeFile(t, filepath.Join(dir, "key"), privPEM)
	writeFile(t, filepath.Join(dir, "key.pub"), pubPEM)
	gotKey, err := LoadPrivateKey(filepath.Join(dir, "key"))
	if err != nil || !gotKey.Equal(key) {
		t.Errorf("LoadPrivateKey = %x, %v; want %x", gotKey, err, key)
	}
	gotPub, err := LoadPublicKey(filepath.Join(dir, "key.pub"))
	if err != nil || !gotPub.Equal(pub) {
		t.Errorf("LoadPublicKey = %x, %v; want %x", gotPub, err, pub)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestParseKeyRejects(t *testing.T) {
	key, pub := testKey(7)
	privPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(pub)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})
	garbled := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})

	pubTests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM block"},
		{"private as public", privPEM, `PEM block "PRIVATE KEY", expected "PUBLIC KEY"`},
		{"ecdsa", ecPEM, "expected ed25519"},
		{"garbled", garbled, "public key:"},
	}
	for _, tt := range pubTests {
		if _, err := ParsePublicKey(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePublicKey(%s): error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := ParsePrivateKey(pubPEM); err == nil || !strings.Contains(err.Error(), `expected "PRIVATE KEY"`) {
		t.Errorf("ParsePrivateKey(public key): error %v", err)
	}
	if _, err := LoadPublicKey(filepath.Join(t.TempDir(), "missing.pub")); err == nil {
		t.Errorf("LoadPublicKey(missing file) succeeded")
	}
}

func FuzzParsePublicKey(f *testing.F) {
	key, pub := testKey(7)
	privPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(pub)
	f.Add(pubPEM)
	f.Add(privPEM)
	f.Fuzz(func(t *testing.T, b []byte) {
		if pub, err := ParsePublicKey(b); err == nil && len(pub) != 32 {
			t.Fatalf("ParsePublicKey returned a %d-byte key", len(pub))
		}
		if key, err := ParsePrivateKey(b); err == nil && len(key) != 64 {
			t.Fatalf("ParsePrivateKey returned a %d-byte key", len(key))
		}
	})
}

func testKey(seed byte) (ed25519.PrivateKey, ed25519.PublicKey) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return key, key.Public().(ed25519.PublicKey)
}

// TestLoadTrusted: mkinitrd's and slotctl's --trust files, in order, each
// key once; a bad file is named in the error.
func TestLoadTrusted(t *testing.T) {
	dir := t.TempDir()
	_, pub1 := testKey(1)
	_, pub2 := testKey(2)
	pem1, _ := MarshalPublicKey(pub1)
	pem2, _ := MarshalPublicKey(pub2)
	p1, p2 := filepath.Join(dir, "one.pub"), filepath.Join(dir, "two.pub")
	writeFile(t, p1, pem1)
	writeFile(t, p2, pem2)
	keys, err := LoadTrusted([]string{p2, p1, p2})
	if err != nil || len(keys) != 2 || !keys[0].Equal(pub2) || !keys[1].Equal(pub1) {
		t.Fatalf("LoadTrusted = %x, %v; want two.pub's key then one.pub's", keys, err)
	}
	if keys, err := LoadTrusted(nil); err != nil || len(keys) != 0 {
		t.Errorf("LoadTrusted(nil) = %x, %v", keys, err)
	}
	junk := filepath.Join(dir, "junk.pub")
	writeFile(t, junk, []byte("hello"))
	if _, err := LoadTrusted([]string{p1, junk}); err == nil || err.Error() != junk+`: no PEM block, expected "PUBLIC KEY"` {
		t.Errorf("junk file: err = %v", err)
	}
	gone := filepath.Join(dir, "gone.pub")
	if _, err := LoadTrusted([]string{gone}); err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("missing file: err = %v", err)
	}
}
