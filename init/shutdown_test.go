// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/shutdown"
)

func fakeStack(t *testing.T, ms ...mounts.Mount) *mounts.Stack {
	t.Helper()
	s := &mounts.Stack{Sys: mounts.Sys{
		Mount:    func(string, string, string, uintptr, string) error { return nil },
		Unmount:  func(string, int) error { return nil },
		MkdirAll: func(string, os.FileMode) error { return nil },
	}}
	if err := s.DoAll(ms...); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUndoState: the record names keel's mounts as the booted system sees
// them (API file systems and moves left out) and its dm devices in the
// order they were made.
func TestUndoState(t *testing.T) {
	l := mounts.DefaultLayout
	root, _ := l.RootMounts(mounts.OverlayPersistent, "/run/keel/data/@overlay/a/os")
	b := &boot{
		newRoot: l.NewRoot,
		rep: &report.Report{Devices: map[string]string{"verity": "/dev/mapper/keel-root-a"},
			Data: &report.Data{Encrypted: true, Device: "/dev/mapper/keel-data"}},
		data: &dataState{stack: fakeStack(t, datapart.Mount("/dev/mapper/keel-data", "btrfs", datapart.DefaultRoot))},
	}
	b.stack = fakeStack(t, append(append(append(mounts.Early(), l.Image("/dev/mapper/keel-root-a", "squashfs")), root...),
		append(datapart.Binds(datapart.DefaultRoot, l.NewRoot), mounts.Mount{Source: "/proc", Target: "/newroot/proc", Flags: unix.MS_MOVE})...)...)
	got := b.undoState(b.keelMounts())
	want := shutdown.State{
		Mounts: []shutdown.Mounted{
			{Role: "data", Target: "/run/keel/data", FSType: "btrfs", Source: "/dev/mapper/keel-data"},
			{Role: "image", Target: "/run/keel/lower", FSType: "squashfs", Source: "/dev/mapper/keel-root-a"},
			{Role: "root", Target: "/", FSType: "overlay", Source: "overlay"},
			{Role: "bind", Target: "/var", Source: "/run/keel/data/@var"},
			{Role: "bind", Target: "/home", Source: "/run/keel/data/@home"},
		},
		DM: []string{"keel-root-a", "keel-data"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state\n got %+v\nwant %+v", got, want)
	}
}

// TestWriteShutdownRoot: the directory holds an executable copy of the
// running binary, the record and the pivot's directories.
func TestWriteShutdownRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "initramfs")
	st := shutdown.State{DM: []string{"keel-root-a"}}
	n, err := writeShutdownRoot(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "shutdown"))
	if err != nil || fi.Size() != self.Size() || n != self.Size() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("shutdown: %v %v, copied %d: want an executable copy of %d bytes", fi, err, n, self.Size())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "keel-undo"))
	if err != nil {
		t.Fatal(err)
	}
	if back, err := shutdown.ParseState(raw); err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("record %+v, %v: want %+v", back, err, st)
	}
	for _, d := range []string{"oldroot", "proc", "sys", "dev", "run"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "shutdown.tmp")); !os.IsNotExist(err) {
		t.Errorf("shutdown.tmp left behind: %v", err)
	}
}

// TestStagedShutdownBinary: the copy staged early is not the shutdown
// program until the record is written: systemd-shutdown must never find
// /run/initramfs/shutdown without its undo record.
func TestStagedShutdownBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "initramfs")
	n, err := stageShutdownBinary(dir)
	if err != nil || n == 0 {
		t.Fatalf("stage: %d bytes, %v", n, err)
	}
	for _, name := range []string{"shutdown", "keel-undo"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists before the record is written (%v)", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "shutdown.tmp")); err != nil || fi.Size() != n {
		t.Fatalf("shutdown.tmp: %v %v, want %d bytes", fi, err, n)
	}
	if err := finishShutdownRoot(dir, shutdown.State{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "shutdown")); err != nil || fi.Size() != n {
		t.Errorf("shutdown: %v %v, want %d bytes", fi, err, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "keel-undo")); err != nil {
		t.Error(err)
	}
}

// TestFinishShutdownRootWithoutCopy: finishing when the copy failed (no
// staged file) is an error naming the program, and leaves no program.
func TestFinishShutdownRootWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	err := finishShutdownRoot(dir, shutdown.State{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "shutdown")) {
		t.Fatalf("err = %v, want one naming %s", err, filepath.Join(dir, "shutdown"))
	}
	if _, err := os.Stat(filepath.Join(dir, "shutdown")); !os.IsNotExist(err) {
		t.Errorf("shutdown exists: %v", err)
	}
}

func TestBootedPath(t *testing.T) {
	for in, want := range map[string]string{"/newroot": "/", "/newroot/var": "/var", "/run/keel/lower": "/run/keel/lower", "/newrootx": "/newrootx"} {
		if got := bootedPath(in, "/newroot"); got != want {
			t.Errorf("bootedPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWatchdogPinger: the shutdown pings a watchdog systemd-shutdown left
// active, at each call, never with the magic close; one that is not
// active is never opened (an open would start it).
func TestWatchdogPinger(t *testing.T) {
	sysfs, dev := t.TempDir(), t.TempDir()
	must(t, os.MkdirAll(filepath.Join(sysfs, "watchdog0"), 0o755))
	state, node := filepath.Join(sysfs, "watchdog0", "state"), filepath.Join(dev, "watchdog")
	must(t, os.WriteFile(node, nil, 0o644))
	must(t, os.WriteFile(state, []byte("inactive\n"), 0o644))
	ping := watchdogPinger(sysfs, dev, "")
	ping()
	if b, _ := os.ReadFile(node); len(b) != 0 {
		t.Fatalf("an inactive watchdog was written: %q", b)
	}
	must(t, os.WriteFile(state, []byte("active\n"), 0o644))
	ping()
	ping()
	if b, _ := os.ReadFile(node); len(b) != 2 || bytes.ContainsRune(b, 'V') {
		t.Errorf("the active watchdog got %q: want two pings, no magic close", b)
	}
}

// TestWatchdogPingerDevice: the watchdog systemd was told to use
// (WatchdogDevice=, handed on as WATCHDOG_DEVICE) is the one pinged; the
// first watchdog, left alone, is not opened. /dev/watchdog1 used to get
// no ping at all.
func TestWatchdogPingerDevice(t *testing.T) {
	sysfs, dev := t.TempDir(), t.TempDir()
	for name, state := range map[string]string{"watchdog0": "inactive\n", "watchdog1": "active\n"} {
		must(t, os.MkdirAll(filepath.Join(sysfs, name), 0o755))
		must(t, os.WriteFile(filepath.Join(sysfs, name, "state"), []byte(state), 0o644))
	}
	first, second := filepath.Join(dev, "watchdog"), filepath.Join(dev, "watchdog1")
	must(t, os.WriteFile(first, nil, 0o644))
	must(t, os.WriteFile(second, nil, 0o644))
	ping := watchdogPinger(sysfs, dev, "/dev/watchdog1")
	ping()
	if b, _ := os.ReadFile(second); len(b) != 1 {
		t.Errorf("/dev/watchdog1 got %q: want a ping", b)
	}
	if b, _ := os.ReadFile(first); len(b) != 0 {
		t.Errorf("/dev/watchdog got %q: the first watchdog, inactive, must not be opened", b)
	}
}

func TestWatchdogName(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"/dev/watchdog", "watchdog0"}, {"/dev/watchdog1", "watchdog1"}, {"/dev/watchdog12", "watchdog12"},
		{"", ""}, {"/dev/watchdogx", ""}, {"/dev/../etc/watchdog1", ""}, {"/tmp/watchdog1", ""}, {"watchdog1", ""},
	} {
		if got, ok := watchdogName(c.path); got != c.want || ok != (c.want != "") {
			t.Errorf("watchdogName(%q) = %q, %v; want %q", c.path, got, ok, c.want)
		}
	}
}

// TestRebootParam: the argument of `systemctl reboot ARG` is read from
// the first place it is found, trimmed; one the kernel would not take
// whole, or with control characters, is refused, named.
func TestRebootParam(t *testing.T) {
	dir := t.TempDir()
	run, old := filepath.Join(dir, "run-param"), filepath.Join(dir, "oldroot-param")
	if p, err := rebootParam(run, old); p != "" || err != nil {
		t.Errorf("no file: %q, %v; want none", p, err)
	}
	must(t, os.WriteFile(old, []byte("recovery\n"), 0o644))
	if p, err := rebootParam(run, old); p != "recovery" || err != nil {
		t.Errorf("the old root's file: %q, %v; want recovery", p, err)
	}
	must(t, os.WriteFile(run, []byte(" bootloader \nsecond line\n"), 0o644))
	if p, err := rebootParam(run, old); p != "bootloader" || err != nil {
		t.Errorf("/run's file first, its first line: %q, %v; want bootloader", p, err)
	}
	// A FIFO is not waited on (PID 1 reads it), a link not followed.
	must(t, os.Remove(run))
	must(t, unix.Mkfifo(run, 0o600))
	if p, err := rebootParam(run, old); p != "" || err == nil || !strings.Contains(err.Error(), "expected a regular file") {
		t.Errorf("a FIFO: %q, %v; want it refused, named", p, err)
	}
	must(t, os.Remove(run))
	must(t, os.Symlink(old, run))
	if p, _ := rebootParam(run); p != "" {
		t.Errorf("a symlink: %q followed", p)
	}
	must(t, os.Remove(run))
	for _, bad := range []string{"a\x1bb", strings.Repeat("x", 256)} {
		must(t, os.WriteFile(run, []byte(bad), 0o644))
		if p, err := rebootParam(run, old); p != "" || err == nil || !strings.Contains(err.Error(), "rebooting without it") {
			t.Errorf("%q: %q, %v; want it refused, named", bad, p, err)
		}
	}
}

// TestDoReboot: a reboot with an argument hands it to the kernel
// (RESTART2), then reboots without it if that fails; other verbs take no
// argument. The argument used to be dropped.
func TestDoReboot(t *testing.T) {
	type call struct {
		cmd int
		arg string
	}
	for _, c := range []struct {
		verb  shutdown.Verb
		param string
		want  []call
	}{
		{shutdown.Reboot, "recovery", []call{{unix.LINUX_REBOOT_CMD_RESTART2, "recovery"}, {unix.LINUX_REBOOT_CMD_RESTART, ""}}},
		{shutdown.Reboot, "", []call{{unix.LINUX_REBOOT_CMD_RESTART, ""}}},
		{shutdown.PowerOff, "recovery", []call{{unix.LINUX_REBOOT_CMD_POWER_OFF, ""}}},
		{shutdown.Halt, "", []call{{unix.LINUX_REBOOT_CMD_HALT, ""}}},
	} {
		var got []call
		doReboot(newLogger(io.Discard), c.verb, c.param, func(cmd int, arg string) error {
			got = append(got, call{cmd, arg})
			return unix.EINVAL // returned: the next call, if any, is made
		})
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %q: calls %v, want %v", c.verb, c.param, got, c.want)
		}
	}
}
