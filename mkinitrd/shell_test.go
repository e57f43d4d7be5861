// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckStatic(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if isELF, err := checkStatic("/bin/busybox", "--shell"); !isELF || err != nil {
			t.Errorf("/bin/busybox (static): isELF %v, err %v", isELF, err)
		}
	}
	if isELF, err := checkStatic("/bin/ls", "--shell"); !isELF || err == nil ||
		!strings.Contains(err.Error(), "--shell /bin/ls is dynamically linked; the initramfs has no libc") {
		t.Errorf("/bin/ls (dynamic): isELF %v, err %v", isELF, err)
	}
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if isELF, err := checkStatic(script, "--init"); isELF || err != nil {
		t.Errorf("script: isELF %v, err %v", isELF, err)
	}
	// docs/initramfs.md is the contract: "symlinks for its applets (sh ls …)".
	doc, err := os.ReadFile("../docs/initramfs.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(doc), "symlinks for its applets (")
	list, _, ok2 := strings.Cut(list, ")")
	if !ok || !ok2 {
		t.Fatal(`docs/initramfs.md has no "symlinks for its applets (…)"`)
	}
	if got, want := strings.Join(applets(), " "), list; got != want {
		t.Errorf("applets %q, docs/initramfs.md lists %q", got, want)
	}
}
