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
	a := map[string]bool{}
	for _, app := range applets() {
		a[app] = true
	}
	for _, need := range []string{"sh", "ls", "cat", "mount", "dmesg", "reboot"} { // SPEC.md's list
		if !a[need] {
			t.Errorf("emergency shell lacks %s", need)
		}
	}
}
