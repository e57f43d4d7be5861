package main

import (
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

func pemKey(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeKey(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadTrustedKeys(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := writeKey(t, dir, "good.pub", pemKey(t, pub))
	keys, err := readTrustedKeys([]string{good, good})
	if err != nil || len(keys) != 1 || string(keys[0]) != string(pub) {
		t.Fatalf("readTrustedKeys = %d keys, %v; want the one key once", len(keys), err)
	}
	bad := []struct {
		name string
		body []byte
		want string
	}{
		{"ecdsa.pub", pemKey(t, &ec.PublicKey), "expected ed25519"},
		{"text.pub", []byte("hello"), "no PEM block"},
		{"priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "expected \"PUBLIC KEY\""},
		{"junk.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}), "junk.pub"},
	}
	for _, b := range bad {
		p := writeKey(t, dir, b.name, b.body)
		if _, err := readTrustedKeys([]string{p}); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
	if _, err := readTrustedKeys([]string{filepath.Join(dir, "gone.pub")}); err == nil {
		t.Error("missing key file accepted")
	}
}

// FuzzParseTrustedKey: --trust files are bytes from disk.
func FuzzParseTrustedKey(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(pemKey(f, pub))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseTrustedKey(b)
		if err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}
