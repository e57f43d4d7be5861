// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	signed, pub := signedHeader(t)
	_, other := testKey(2)
	_, third := testKey(3)
	tampered, _ := signedHeader(t)
	tampered.ImageID = "evil"
	tests := []struct {
		name    string
		h       *Header
		trusted []ed25519.PublicKey
		wantOK  bool
		wantErr string
	}{
		{"unsigned, no keys", testHeader(), nil, false, ""},
		{"signed, no keys", signed, nil, false, ""},
		{"trusted", signed, []ed25519.PublicKey{other, pub}, true, ""},
		{"unsigned with keys", testHeader(), []ed25519.PublicKey{pub, other}, false,
			"header is not signed but 2 trusted keys are baked in"},
		{"untrusted", signed, []ed25519.PublicKey{other, third}, false,
			"header signed by key " + keyPrefix(pub) + "…, not in the trusted set (" + keyPrefix(other) + "…, " + keyPrefix(third) + "…)"},
		{"tampered", tampered, []ed25519.PublicKey{pub}, false, "does not verify"},
		{"bad trusted key", signed, []ed25519.PublicKey{pub[:31]}, false, "trusted key 0 is 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := tt.h.Authenticate(tt.trusted)
			if ok != tt.wantOK {
				t.Errorf("Authenticate = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantErr == "" && err != nil {
				t.Errorf("Authenticate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Authenticate: error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func keyPrefix(pub ed25519.PublicKey) string {
	id := KeyID(pub)
	return short(id[:])
}

func TestSignRejectsBadKey(t *testing.T) {
	h := testHeader()
	if err := h.Sign(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "10 bytes") {
		t.Errorf("Sign(10-byte key): error %v, want one naming the size", err)
	}
	if h.Signed() {
		t.Errorf("Sign with a bad key left the header signed")
	}
}
