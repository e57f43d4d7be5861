// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// watchdogSeconds is the test's rd.watchdog=: long enough for the initramfs
// to hand over and for slot b's payload to power off under TCG, short
// enough to keep the scenario's three boots quick.
const watchdogSeconds = "20"

// hangMarker is what slot a's init prints before it hangs.
const hangMarker = "KEEL-TEST: slot a hangs"

// watchdogQEMU gives the guest QEMU's emulated Intel 6300ESB watchdog,
// resetting the machine when it fires; under -no-reboot the reset ends QEMU.
var watchdogQEMU = []string{"-device", "i6300esb", "-action", "watchdog=reset"}

// hangTree is a root whose /sbin/init prints hangMarker and sleeps
// forever: a system that hangs after switch_root, before anything could
// mark it good.
func hangTree(t testing.TB) string {
	t.Helper()
	return scriptInitTree(t, "echo "+hangMarker+"\nexec /bin/busybox sleep 2147483647\n")
}

// scriptInitTree is a root whose /sbin/init is a busybox shell script.
func scriptInitTree(t testing.TB, body string) string {
	t.Helper()
	dir := vm.RootTree(t, vm.BuildPayload(t))
	vm.Install(t, "/bin/busybox", dir, "bin/busybox")
	script := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(script, []byte("#!/bin/busybox sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	vm.Install(t, script, dir, "sbin/init")
	return dir
}

// TestPanicRebootsAndRollsBack: an update in slot a whose init exits right
// after switch_root (PID 1 gone: the kernel panics, "Attempted to kill
// init"), on a machine with no watchdog and no panic= on the command line.
// Debian's kernel stops on a panic for ever (CONFIG_PANIC_TIMEOUT=0), and
// the machine sat there until someone power-cycled it; keel sets
// kernel.panic to 10 s, so it restarts by itself, the try already counted,
// and once a's tries are spent the good slot b boots.
func TestPanicRebootsAndRollsBack(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	// The script's own echo goes through the tty, whose buffered output a
	// panic may never send (CI saw the marker missing altogether), so the
	// proof that the image's init is what exited is in the kernel's lines:
	// the marker written to /dev/kmsg at a level the console prints (the
	// panic flushes the kernel's log), and the script's exit status 77 in
	// the panic message (exitcode=0x00004d00).
	// keel's own PID 1 never exits, and a Go crash would exit with 2.
	const exitMarker = "KEEL-TEST: init exits"
	const exitCode = "exitcode=0x00004d00"
	a := seal(t, scriptInitTree(t, "echo '<2>"+exitMarker+"' >/dev/kmsg\nexit 77\n"), "", "img-exit")
	b := seal(t, payloadTree(t, "image-b"), "", "img-b")
	disk := abDisk(t, &a, &b).Path
	rd := initrd(t)
	slotctlDisk(t, disk, "mark-good", "b")
	slotctlDisk(t, disk, "set-next", "a", "--tries", "1")
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk}, NoPanicOption: true})
	m.Expect("keel: switching root to ")
	m.Expect(vm.PanicMessage + ": Attempted to kill init! " + exitCode)
	m.Expect("Rebooting in 10 seconds")
	m.Wait() // the kernel's restart ends QEMU (-no-reboot)
	if !strings.Contains(m.Output(), exitMarker) {
		t.Fatalf("no %q in the kernel's log on the console: the image's init did not run", exitMarker)
	}
	if a := diskStatus(t, disk).slot(t, "a"); a.Tries != 0 || a.Good {
		t.Fatalf("after the panic: a %+v: want its one try counted", a)
	}
	m = vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk}, NoPanicOption: true})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	if br := bootReport(t, r); br.Slot != "b" || marker(r) != "image-b" || !strings.Contains(br.SlotReason, bootstate.ReasonTriesExhausted) {
		t.Fatalf("after a's try: slot %q, marker %q, slot_reason %q: want b, image-b, a's tries exhausted", br.Slot, marker(r), br.SlotReason)
	}
}

// TestWatchdogHangRollsBack: an update in slot a whose init hangs after
// switch_root, with rd.watchdog baked in (mkinitrd --watchdog) and an
// i6300esb in the machine. keel hands the watchdog over still running; the
// hung system never feeds it, so the machine resets by itself, each time
// after keel counted a try; once a's tries are spent the good slot b boots,
// and its boot.json names the watchdog.
func TestWatchdogHangRollsBack(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, hangTree(t), key, "img-hang")
	b := seal(t, payloadTree(t, "image-b"), key, "img-b")
	disk := abDisk(t, &a, &b).Path
	initrd := initrd(t, "--trust", key+".pub", "--watchdog", watchdogSeconds)
	slotctlDisk(t, disk, "mark-good", "b")
	slotctlDisk(t, disk, "set-next", "a", "--tries", "2")
	handOff := "keel: watchdog /dev/watchdog0 (i6300ESB timer) left running with a " + watchdogSeconds + " s timeout"
	for left := 1; left >= 0; left-- {
		m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{disk}, QEMUArgs: watchdogQEMU})
		m.Expect(handOff)
		m.Expect(hangMarker)
		m.Wait() // nothing in the guest reboots: only the watchdog ends QEMU
		for _, msg := range []string{vm.RebootMessage, vm.PowerOffMessage, vm.PanicMessage, "keel: BOOT FAILED"} {
			if strings.Contains(m.Output(), msg) {
				t.Fatalf("boot of the hanging slot ended with %q, not by the watchdog; see %s", msg, m.LogPath())
			}
		}
		s := diskStatus(t, disk)
		if a := s.slot(t, "a"); a.Tries != left || a.Good {
			t.Fatalf("after the watchdog reset: a %+v: want %d tries left, not good", a, left)
		}
	}
	m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{disk}, QEMUArgs: watchdogQEMU})
	m.Expect(handOff)
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "b" || r.Marker == nil || *r.Marker != "image-b" || !strings.Contains(br.SlotReason, bootstate.ReasonTriesExhausted) {
		t.Fatalf("after a's tries: slot %q, marker %v, slot_reason %q: want b, image-b, a's tries exhausted", br.Slot, r.Marker, br.SlotReason)
	}
	if w := br.Watchdog; w == nil || w.Device != "/dev/watchdog0" || w.Identity != "i6300ESB timer" || w.Timeout != 20 || w.None != "" {
		t.Errorf("boot.json watchdog %+v: want /dev/watchdog0, i6300ESB timer, 20 s", w)
	}
}

// noWatchdogModules is an image's module list without watchdog drivers:
// QEMU's q35 has an ICH9 TCO watchdog that the default image's lpc_ich and
// iTCO_wdt would find.
const noWatchdogModules = "virtio_pci,virtio_blk,squashfs,overlay,dm_mod,dm_verity"

// TestWatchdogNone: rd.watchdog= on a machine (here: an image) without a
// hardware watchdog says so on the console and in boot.json and boots;
// softdog is used only by an image that carries it (--modules softdog),
// and then loudly.
func TestWatchdogNone(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	disk := abDisk(t, &a, nil).Path
	for _, tc := range []struct {
		name, modules, console, device, identity, none string
	}{
		{"none", noWatchdogModules,
			`keel: rd\.watchdog=20: no hardware watchdog appeared [^;]*; booting without a watchdog`,
			"", "", "no hardware watchdog appeared"},
		{"softdog-opt-in", noWatchdogModules + ",softdog",
			`keel: rd\.watchdog=20: no hardware watchdog appeared [^;]*; using softdog, which the image carries`,
			"/dev/watchdog0", "Software Watchdog", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := initrd(t, "--trust", key+".pub", "--no-default-modules", "--modules", tc.modules)
			m := vm.Start(t, vm.Options{Initrd: img, Disks: []string{disk}, Cmdline: "slot=a rd.watchdog=20"})
			m.ExpectRegexp(tc.console)
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			w := br.Watchdog
			if br.Slot != "a" || w == nil || w.Device != tc.device || w.Identity != tc.identity || !strings.Contains(w.None, tc.none) || (tc.none == "") != (w.None == "") {
				t.Errorf("slot %q, boot.json watchdog %+v: want slot a booted, device %q (%q), none %q", br.Slot, w, tc.device, tc.identity, tc.none)
			}
		})
	}
}
