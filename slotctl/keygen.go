// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/slots"
	slotkeys "github.com/keel-boot/keel/slots/keys"
)

// runKeygen writes KEY (PKCS#8 PEM, mode 0600) and KEY.pub (PKIX PEM).
func runKeygen(e *env, args []string) error {
	fs := newFlags(e, "keygen")
	out := fs.String("out", "", "private key file to write; the public key goes to the same path + .pub")
	force := fs.Bool("force", false, "replace existing key files")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if err := required("out", *out); err != nil {
		return err
	}
	pubPath := *out + ".pub"
	if !*force {
		for _, p := range []string{*out, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s already exists (--force replaces it)", p)
			}
		}
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if err := writeKeys(*out, pubPath, key, pub, *force); err != nil {
		return err
	}
	id := slots.KeyID(pub)
	fmt.Fprintf(e.stdout, "wrote %s (private: keep it secret) and %s\nkey id: %s\n", *out, pubPath, hex.EncodeToString(id[:]))
	return nil
}

func writeKeys(keyPath, pubPath string, key ed25519.PrivateKey, pub ed25519.PublicKey, force bool) error {
	keyPEM, err := slotkeys.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	pubPEM, err := slotkeys.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, 0o600, force, copyFrom(keyPEM)); err != nil {
		return err
	}
	return writeFile(pubPath, 0o644, force, copyFrom(pubPEM))
}

func copyFrom(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(b))
		return err
	}
}
