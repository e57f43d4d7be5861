// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ed25519"
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

// TestReadTrustedKeys: the raw keys for the baked config, each once; the
// parsing itself is slots/keys' (TestLoadTrusted, FuzzParsePublicKey).
func TestReadTrustedKeys(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := writeKey(t, dir, "good.pub", pemKey(t, pub))
	keys, err := readTrustedKeys([]string{good, good})
	if err != nil || len(keys) != 1 || string(keys[0]) != string(pub) {
		t.Fatalf("readTrustedKeys = %d keys, %v; want the one key once", len(keys), err)
	}
	junk := writeKey(t, dir, "junk.pub", []byte("hello"))
	if _, err := readTrustedKeys([]string{junk}); err == nil || !strings.HasPrefix(err.Error(), "--trust: "+junk+": no PEM block") {
		t.Errorf("junk: err = %v", err)
	}
}
