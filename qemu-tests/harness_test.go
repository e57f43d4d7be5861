// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"slices"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestHarnessBoot boots the payload as the initramfs's /init: the harness,
// the payload's report and its test actions, end to end, without keel.
func TestHarnessBoot(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	dir := t.TempDir()
	vm.Install(t, vm.BuildPayload(t), dir, "init")
	write, err := report.WriteParam("/tmp/hello", "hello world")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m := vm.Start(t, vm.Options{
		Initrd:  vm.MkCpio(t, dir),
		Cmdline: "keeltest=env " + write + " keel.test.cat=/tmp/hello keel.test.cat=/nonexistent",
	})
	m.Expect(report.Line(report.KeyStart, ""))
	t.Logf("payload started %v after QEMU", time.Since(start).Round(time.Millisecond))
	r := m.ExpectReport()
	m.ExpectPowerOff()
	t.Logf("powered off %v after QEMU started", time.Since(start).Round(time.Millisecond))

	if r.PID != 1 || !slices.Equal(r.Argv, []string{"/init"}) {
		t.Errorf("pid %d, argv %q: want 1, [/init]", r.PID, r.Argv)
	}
	// The kernel hands undotted unknown parameters to init as environment.
	if !slices.Contains(r.Environ, "keeltest=env") {
		t.Errorf("environ %q: want keeltest=env from the command line", r.Environ)
	}
	if m, ok := r.Mount("/proc"); !ok || m.FSType != "proc" {
		t.Errorf("/proc: %+v, mounted %v: want the proc file system the payload mounts", m, ok)
	}
	if r.BootJSON != nil || r.Marker != nil || !r.RootWritable {
		t.Errorf("boot.json %s, marker %v, root writable %v: want none, none, yes (a bare initramfs)", r.BootJSON, r.Marker, r.RootWritable)
	}
	if len(r.Writes) != 1 || r.Writes[0] != (report.Result{Path: "/tmp/hello"}) {
		t.Errorf("writes %+v: want /tmp/hello ok", r.Writes)
	}
	if c, _ := r.Cat("/tmp/hello"); c.Content != "hello world" {
		t.Errorf("cat /tmp/hello: %+v: want the content written", c)
	}
	if c, _ := r.Cat("/nonexistent"); !c.Missing {
		t.Errorf("cat /nonexistent: %+v: want missing", c)
	}
	if len(r.Errors) != 0 || !r.Done {
		t.Errorf("payload errors %q, done %v: want none, done", r.Errors, r.Done)
	}
}
