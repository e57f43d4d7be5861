// SPDX-License-Identifier: Apache-2.0

// Package build builds keel's binaries as the Makefile does, for the QEMU
// tests and the benchmark, so that they boot the init that ships (a test
// checks the Makefile's flags against Args).
package build

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Args are the flags after "go build", before -o.
//
//   - -trimpath, -buildvcs=false, -buildid=: the same source gives the same
//     bytes (mkinitrd images are reproducible only if the init is).
//   - -s -w: no symbol table or DWARF (the init is 30 % smaller).
//   - -gcflags=all=-l: no inlining, 80 KB less init. The runtime and the
//     crypto packages keep it: PBKDF2 without inlining runs 1.8× slower,
//     and LUKS key slots are calibrated in seconds of it.
func Args() []string {
	return []string{
		"-trimpath", "-buildvcs=false",
		"-gcflags=all=-l", "-gcflags=runtime=", "-gcflags=crypto/...=", "-gcflags=golang.org/x/crypto/...=",
		"-ldflags=-s -w -buildid=",
	}
}

// Tools are the built binaries.
type Tools struct {
	Init, Mkinitrd, Slotctl string
	// Segment is the init's precompressed segment (Init + ".cpio.zst"),
	// "" when the zstd tool is missing (mkinitrd then compresses the init
	// into each image).
	Segment string
}

// Keel builds init, mkinitrd and slotctl of the module at root into dir,
// and the init segment as `make build` does.
func Keel(root, dir string) (Tools, error) {
	t := Tools{Init: filepath.Join(dir, "init"), Mkinitrd: filepath.Join(dir, "mkinitrd"), Slotctl: filepath.Join(dir, "slotctl")}
	for _, out := range []string{t.Init, t.Mkinitrd, t.Slotctl} {
		args := append(append([]string{"build"}, Args()...), "-o", out, "./"+filepath.Base(out))
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return t, fmt.Errorf("build %s: %v\n%s", filepath.Base(out), err, b)
		}
	}
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		return t, nil
	}
	cpio, err := exec.Command(t.Mkinitrd, "init-segment", "--init", t.Init).Output()
	if err != nil {
		return t, fmt.Errorf("mkinitrd init-segment: %w", err)
	}
	cmd := exec.Command(zstd, "-19", "-q", "-c")
	cmd.Stdin = bytes.NewReader(cpio)
	seg, err := cmd.Output()
	if err != nil {
		return t, fmt.Errorf("zstd -19: %w", err)
	}
	t.Segment = t.Init + ".cpio.zst"
	return t, os.WriteFile(t.Segment, seg, 0o644)
}
