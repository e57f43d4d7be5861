package main

import (
	"bytes"
	"fmt"
	"os"

	slotkeys "github.com/keel-boot/keel/slots/keys"
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

// parseTrustedKey decodes one --trust file with the same parser slotctl uses.
func parseTrustedKey(b []byte) ([]byte, error) {
	k, err := slotkeys.ParsePublicKey(b)
	return []byte(k), err
}
