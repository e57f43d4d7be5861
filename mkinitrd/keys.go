// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	slotkeys "github.com/keel-boot/keel/slots/keys"
)

// readTrustedKeys reads the --trust files with the loader slotctl uses
// (PKIX PEM ed25519 public keys, as `slotctl keygen` and `openssl genpkey
// -algorithm ed25519` write them), as raw keys for the baked config.
func readTrustedKeys(paths []string) ([][]byte, error) {
	keys, err := slotkeys.LoadTrusted(paths)
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i] = k
	}
	return raw, nil
}
