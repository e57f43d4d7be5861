package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// readTrustedKeys reads --trust files: PKIX PEM ed25519 public keys, as
// `slotctl` and `openssl genpkey -algorithm ed25519` write them.
func readTrustedKeys(paths []string) ([][]byte, error) {
	var keys [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--trust: %w", err)
		}
		k, err := parseTrustedKey(b)
		if err != nil {
			return nil, fmt.Errorf("--trust %s: %w", p, err)
		}
		dup := false
		for _, have := range keys {
			dup = dup || bytes.Equal(have, k)
		}
		if !dup {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func parseTrustedKey(b []byte) ([]byte, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no PEM block, expected a \"PUBLIC KEY\"")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block %q, expected \"PUBLIC KEY\"", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%T key, expected ed25519", pub)
	}
	return []byte(k), nil
}
