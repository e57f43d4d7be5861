// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strings"
)

// KeyID names a public key: the sha256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) [32]byte { return sha256.Sum256(pub) }

// Sign sets the key id and signs the header with key. The signature covers
// every header byte before it, key id included.
func (h *Header) Sign(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key is %d bytes, expected %d (ed25519)", len(key), ed25519.PrivateKeySize)
	}
	// Work on a copy so that a header that cannot be encoded stays unsigned.
	s := *h
	s.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	b, err := s.encodeSigned()
	if err != nil {
		return err
	}
	h.KeyID, h.Signature = s.KeyID, ed25519.Sign(key, b[:offSignature])
	return nil
}

// Authenticate checks the signature against the trusted keys. With no trusted
// keys every header is accepted but not authenticated: (false, nil). With
// trusted keys the header must be signed by one of them: (true, nil).
func (h *Header) Authenticate(trusted []ed25519.PublicKey) (bool, error) {
	if len(trusted) == 0 {
		return false, nil
	}
	if !h.Signed() {
		return false, fmt.Errorf("header is not signed but %d trusted keys are baked in", len(trusted))
	}
	pub, err := findKey(h.KeyID, trusted)
	if err != nil {
		return false, err
	}
	if err := h.checkSignatureFields(); err != nil {
		return false, err
	}
	b, err := h.encodeSigned()
	if err != nil {
		return false, err
	}
	if !ed25519.Verify(pub, b[:offSignature], h.Signature) {
		return false, fmt.Errorf("header signature by key %s… does not verify: header altered after signing", short(h.KeyID[:]))
	}
	return true, nil
}

// findKey returns the trusted key whose id is id.
func findKey(id [32]byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	ids := make([]string, 0, len(trusted))
	for i, pub := range trusted {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("trusted key %d is %d bytes, expected %d (ed25519)", i, len(pub), ed25519.PublicKeySize)
		}
		k := KeyID(pub)
		if k == id {
			return pub, nil
		}
		ids = append(ids, short(k[:])+"…")
	}
	return nil, fmt.Errorf("header signed by key %s…, not in the trusted set (%s)",
		short(id[:]), strings.Join(ids, ", "))
}
