// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	vol := filepath.Join("..", "..", "..", "unlock", "testdata", "pbkdf2-sha512.img")
	key := filepath.Join("..", "..", "..", "unlock", "testdata", "pbkdf2-sha512.key")
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--key-file", key, vol}, 0, ""},
		{[]string{"--key-file", wrong, vol}, 2, "no key slot matches the key file"},
		{[]string{vol}, 1, "usage: keel-unlock --key-file FILE VOLUME"},
		{[]string{"--key-file", filepath.Join(t.TempDir(), "none"), vol}, 1, "no such file"},
		{[]string{"--key-file", key, "/dev/null"}, 1, "LUKS"},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		// Without root or an unlimited RLIMIT_MEMLOCK the lock is refused
		// with a warning on stderr; the rest is the same.
		out := stderr.String()
		if code != tc.code || (tc.err == "" && strings.Contains(out, "keel-unlock: volume")) || !strings.Contains(out, tc.err) {
			t.Errorf("keel-unlock %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, out, tc.code, tc.err)
		}
	}
}
