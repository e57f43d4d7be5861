// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/shutdown"
	"github.com/keel-boot/keel/unlock"
)

// emergencyModuleWait bounds how long a failed boot waits for modules
// still loading in the background before it says so and opens the shell.
const emergencyModuleWait = 5 * time.Second

// emergency follows rd.emergency after an unrecoverable failure. It never
// returns: PID 1 must not exit.
func (b *boot) emergency(err error) {
	if err == nil {
		err = fmt.Errorf("boot sequence ended without switching root")
	}
	b.reportFailure(err)
	opts := b.emergencyConfig()
	policy := emergencyPolicy(opts.Emergency, opts.locked)
	if policy == kargs.EmergencyShell {
		b.shellHeld.Store(true)
		b.humanAtConsole() // the shell, or the wait for Enter, is a human's
	}
	if policy == kargs.EmergencyShell && !b.waitForInput(opts.EmergencyTimeout) {
		policy = kargs.EmergencyReboot
	}
	if policy == kargs.EmergencyShell {
		b.shell()
		policy = kargs.EmergencyReboot
	}
	// The console is nobody's any more: the halt is work, under a work
	// lease (a reboot(2) that fails then ends in the watchdog's reset).
	b.shellHeld.Store(false)
	b.progress()
	b.halt(policy)
}

// procCmdline is the kernel command line; a variable for tests.
var procCmdline = "/proc/cmdline"

// emergencyOptions are what the emergency follows: rd.emergency=,
// rd.emergency.timeout= and whether the initramfs is locked.
type emergencyOptions struct {
	Emergency        string
	EmergencyTimeout time.Duration
	locked           bool
}

// emergencyConfig is the configuration's emergency options, and gives a
// failure before the config phase (early mounts, a loader's panic) the
// ones it would have had: the baked command line's rd.emergency= and
// rd.emergency.timeout=, then the kernel's, if /proc is there to read it.
// The zero configuration meant a shell that waits forever on an unattended
// machine built with rd.emergency=reboot, and a reboot for one built to
// power off (found by a hunting helper). Without a readable baked
// configuration, locked, as the config phase would be. It writes nothing
// of the boot's: beside the sequence (a goroutine's panic) the sequence
// may be in its config phase, so the baked configuration is read again.
func (b *boot) emergencyConfig() emergencyOptions {
	if b.configured.Load() {
		return emergencyOptions{b.cfg.Emergency, b.cfg.EmergencyTimeout, b.baked != nil && b.baked.Locked}
	}
	var baked *bakedconf.Config
	if !b.policyAside() {
		baked = b.baked // beside the sequence, its config phase may be writing it
	}
	if baked == nil {
		var err error
		if baked, err = bakedconf.Load(bakedPath); err != nil {
			baked = &bakedconf.Config{Version: bakedconf.Version, Locked: true}
		}
	}
	cfg, _ := kargs.FromBaked(baked.Cmdline, baked.Locked)
	if cmdline, err := os.ReadFile(procCmdline); err == nil {
		cfg, _ = kargs.Parse(strings.TrimSpace(string(cmdline)), cfg, baked.Locked)
	}
	return emergencyOptions{cfg.Emergency, cfg.EmergencyTimeout, baked.Locked}
}

// bakedPath is the baked configuration; a variable for tests.
var bakedPath = bakedconf.Path

// reportFailure waits a little for the background loads, says that the
// boot failed and writes the failure's report (report.go).
//
// Beside the boot sequence (another goroutine's panic), the background
// loads are not waited for: the sequence may still start one, and a
// WaitGroup's Add beside its Wait is a misuse the sync package panics on;
// their failures so far are reported.
func (b *boot) reportFailure(err error) {
	rep := b.failureReport()
	if b.policyAside() {
		b.reportBackground(rep)
	} else if b.storageForRescue(); !b.waitBackgroundInto(emergencyModuleWait, rep) {
		b.log.Warnf("modules still loading after %v (or a loader that panicked); going on without them", emergencyModuleWait)
	}
	b.log.Errorf("boot failed: %v", err)
	b.log.Console("\nkeel: BOOT FAILED: %v", err)
	b.writeFailure(rep, err)
}

// emergencyPolicy is what a failed boot does first: rd.emergency (a shell
// when unset), except that a locked initramfs never opens a shell. Anything
// but a shell or a power-off reboots.
func emergencyPolicy(rdEmergency string, locked bool) string {
	switch {
	case rdEmergency == kargs.EmergencyPoweroff:
		return kargs.EmergencyPoweroff
	case (rdEmergency == kargs.EmergencyShell || rdEmergency == "") && !locked:
		return kargs.EmergencyShell
	}
	return kargs.EmergencyReboot
}

// shellPath is the emergency shell baked in, "" when there is none.
func (b *boot) shellPath() string {
	if b.baked == nil || b.baked.Shell == "" {
		return ""
	}
	if _, err := os.Stat(b.baked.Shell); err != nil {
		return ""
	}
	return b.baked.Shell
}

// waitForInput implements rd.emergency.timeout: an unattended machine must
// not sit in a shell forever, so with a timeout the shell starts only when
// someone presses Enter in time. It reports whether to start the shell.
func (b *boot) waitForInput(t time.Duration) bool {
	if b.shellPath() == "" {
		b.log.Console("keel: no emergency shell in this initramfs (mkinitrd --shell)")
		return false
	}
	if t <= 0 {
		return true
	}
	b.log.Console("keel: press Enter within %v for an emergency shell; rebooting otherwise", t)
	// Polled again after a signal (EINTR), which used to count as no input.
	if ok, err := unlock.PollInput(0, t); err != nil || !ok {
		b.log.Console("keel: no input in %v", t)
		return false
	}
	buf := make([]byte, 64)
	_, _ = unix.Read(0, buf)
	return true
}

// shell runs the emergency shell on the console and waits for it to exit.
func (b *boot) shell() {
	sh := b.shellPath()
	if sh == "" || (b.baked != nil && b.baked.Locked) {
		b.log.Console("keel: no emergency shell available")
		return
	}
	b.log.Console("keel: starting emergency shell; the boot report is %s; exit to continue", report.Path)
	b.humanAtConsole()
	defer b.progress()
	// os.StartProcess rather than os/exec: the same call, 49 KB less init
	// (internal/guard fails if the init links os/exec).
	p, err := os.StartProcess(sh, []string{sh}, &os.ProcAttr{
		Env:   []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=linux", "PS1=keel# "},
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err == nil {
		_, err = p.Wait()
	}
	if err != nil {
		b.log.Console("keel: emergency shell: %v", err)
	}
}

// halt reboots, or powers off for kargs.EmergencyPoweroff; if even that fails it waits forever rather
// than exit and panic the kernel.
func (b *boot) halt(policy string) {
	cmd, what := unix.LINUX_REBOOT_CMD_RESTART, "rebooting"
	if policy == kargs.EmergencyPoweroff {
		cmd, what = unix.LINUX_REBOOT_CMD_POWER_OFF, "powering off"
	}
	b.log.Console("keel: %s", what)
	if err := b.syncThen(func() error { return unix.Reboot(cmd) }, b.haltSys(), haltSyncStep); err != nil {
		b.log.Console("keel: %s failed: %v; halting here", policy, err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// haltSys is the system the sync before an emergency reboot runs on. Each
// sign of progress renews the watchdog's lease, as the shutdown pings it:
// a slow write-back that gets on is not reset in its middle (found in
// review); a stalled one stops the renewals.
func (b *boot) haltSys() shutdown.Sys {
	return shutdown.Sys{Sync: unix.Sync, Dirty: dirtyKiB, Written: writtenPages, Progress: b.progress}
}

// haltSyncStep is the step of the wait for the sync before an emergency
// reboot: the sync is waited for as long as the write-back gets on, by the
// shutdown's rule (shutdown.SyncAll: more pages written back, or less data
// waiting, in one of three steps in a row; ten minutes at most), so a slow
// disk (an SD card after writes in the emergency shell) finishes, while a
// disk that stopped answering does not hold the reboot for ever and a
// locked machine still restarts. What keel writes is safe from a power cut
// at any point, which is what a reboot past a stalled sync amounts to. The
// wait used to give up at the first step in which the data waiting did not
// shrink, a rise then a fall (a btrfs commit's metadata) included.
const haltSyncStep = 10 * time.Second

// syncThen runs sys.Sync, waits for it as shutdown.SyncAll does, then runs
// act; a sync given up is named on the console.
func (b *boot) syncThen(act func() error, sys shutdown.Sys, step time.Duration) error {
	if err := shutdown.SyncAll(sys, step); err != nil {
		b.log.Console("keel: the sync of the disks was given up (%v; a disk that does not answer?): going on without it", err)
	}
	return act()
}

func timeSince(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
