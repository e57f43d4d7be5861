// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestHarnessConsoleInput types into a busybox shell on the serial console,
// as emergency-shell scenarios will, then pulls the plug.
func TestHarnessConsoleInput(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const busybox = "/bin/busybox"
	dir := t.TempDir()
	vm.Install(t, busybox, dir, "bin/busybox")
	vm.WriteFile(t, dir, "init", "#!/bin/busybox sh\necho KEEL-HARNESS: shell ready\nexec /bin/busybox sh\n")
	if err := os.Chmod(filepath.Join(dir, "init"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := vm.Start(t, vm.Options{Initrd: vm.MkCpio(t, dir)})
	m.Expect("KEEL-HARNESS: shell ready")
	m.Expect("# ") // the prompt, which ends no line
	// The console echoes what is typed: only the shell can print 42.
	m.Send("echo $((6 * 7))\n")
	if got := m.ExpectRegexp(`^(\d+)$`); got[1] != "42" {
		t.Errorf("shell printed %q, want 42", got[1])
	}
	m.Kill()
	if out := m.Output(); strings.Contains(out, vm.PowerOffMessage) || strings.Contains(out, vm.PanicMessage) {
		t.Errorf("the guest powered off or panicked by itself; see %s", m.LogPath())
	}
}
