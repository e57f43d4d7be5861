// SPDX-License-Identifier: Apache-2.0

package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakefileAgrees: the Makefile's GOFLAGS_BUILD line says the same as Args.
func TestMakefileAgrees(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "GOFLAGS_BUILD := "); ok {
			var want []string
			for _, a := range Args() {
				if strings.Contains(a, " ") {
					k, v, _ := strings.Cut(a, "=")
					a = k + `="` + v + `"`
				}
				want = append(want, a)
			}
			if v != strings.Join(want, " ") {
				t.Errorf("Makefile GOFLAGS_BUILD is\n  %s\nbuildflags.Args() says\n  %s", v, strings.Join(want, " "))
			}
			return
		}
	}
	t.Fatal("no GOFLAGS_BUILD line in the Makefile")
}

// TestKeel builds the tools as the QEMU tests do and checks that mkinitrd
// takes the segment (a stale or malformed one would be refused).
// It runs under -short too: make unit is the only target that runs this
// package, and make builds the same binaries first (the build cache).
func TestKeel(t *testing.T) {
	tl, err := Keel("../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if tl.Segment == "" {
		t.Skip("no zstd tool")
	}
	out, err := exec.Command(tl.Mkinitrd, "--out", filepath.Join(t.TempDir(), "i.img"), "--kver", "none", "--no-default-modules", "--init", tl.Init).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "init precompressed yes") {
		t.Errorf("mkinitrd: %v\n%s", err, out)
	}
}
