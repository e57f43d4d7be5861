// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// testUUID is the uuid the tests give veritysetup and Format.
var testUUID = [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(n int64, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	rand.NewChaCha8(s).Read(b)
	return b
}

// writeFile writes b to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// needTool skips the test when the named program is missing.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

// veritysetup runs veritysetup with args and returns its output.
func veritysetup(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("veritysetup", args...).CombinedOutput()
	return string(out), err
}

// veritysetupFormat runs `veritysetup format` and returns the root hash.
func veritysetupFormat(t testing.TB, data, hash string, extra ...string) []byte {
	t.Helper()
	args := append([]string{"format", data, hash, "--uuid=" + FormatUUID(testUUID)}, extra...)
	out, err := veritysetup(t, args...)
	if err != nil {
		t.Fatalf("veritysetup %q: %v\n%s", args, err, out)
	}
	m := rootHashLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("veritysetup %q printed no root hash:\n%s", args, out)
	}
	root, err := hex.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// format runs Format over data in memory and returns the hash device and root.
func format(t testing.TB, data []byte, p Params) ([]byte, []byte) {
	t.Helper()
	var out bytes.Buffer
	root, err := Format(bytes.NewReader(data), p, &out)
	if err != nil {
		t.Fatalf("Format(%d bytes, %+v): %v", len(data), p, err)
	}
	return out.Bytes(), root
}
