// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"path/filepath"
	"testing"
)

// payloadPackage is the test payload, built for the guest.
const payloadPackage = "github.com/keel-boot/keel/qemu-tests/payload"

// BuildPayload compiles the test payload (a static binary for the x86-64
// guest) once per test binary and returns its path.
func BuildPayload(t testing.TB) string {
	t.Helper()
	shared.payloadOnce.Do(func() { shared.payload, shared.payloadErr = buildPayload() })
	if shared.payloadErr != nil {
		t.Fatal(shared.payloadErr)
	}
	return shared.payload
}

func buildPayload() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := shared.scratchDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "payload")
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}
	// -s -w: a smaller initramfs unpacks faster under TCG.
	if _, err := runErr(root, env, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, payloadPackage); err != nil {
		return "", fmt.Errorf("build test payload: %w", err)
	}
	return out, nil
}
