// SPDX-License-Identifier: Apache-2.0

// Command init is keel's PID 1 inside the initramfs: it finds the root image,
// verifies it with dm-verity, stacks the overlay and switch_roots into the
// real init. It never exits: every failure ends in the emergency policy.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/rescue"
)

func main() {
	// systemd-shutdown executes /run/initramfs/shutdown, a copy of this
	// binary, as PID 1 at power-off (init/shutdown.go).
	if filepath.Base(os.Args[0]) == "shutdown" {
		os.Exit(shutdownMain(os.Args))
	}
	// mkinitrd links /bin/sh to /init: started as sh (the emergency shell
	// runs as a child process, never as PID 1), this binary is the rescue
	// shell.
	if os.Getpid() != 1 {
		if filepath.Base(os.Args[0]) == "sh" {
			os.Exit(rescue.Main(os.Args))
		}
		fmt.Fprintf(os.Stderr, "%s: keel's init must run as PID 1 (it is PID %d); started as sh it is the rescue shell\n", os.Args[0], os.Getpid())
		os.Exit(2)
	}
	b := newBoot(time.Now())
	defer b.recovery()
	b.catchSignals()
	err := b.run()
	b.enterEmergency(err)
}

// recovery turns a panic into the emergency policy: a panic in PID 1 would
// otherwise be a kernel panic.
func (b *boot) recovery() {
	if r := recover(); r != nil {
		b.sequencePanicked("the boot sequence", r)
	}
}

// run is the boot sequence of docs/boot-sequence.md, one call per phase;
// each phase lives in the file named after it (early.go, config.go,
// devices.go, data.go, root.go with root_slot.go, root_single.go and
// root_plain.go, report.go, switchroot.go).
// It only returns on failure: on success the last phase execs the real
// init. The data partition is its own phase, before the root (the slot is
// chosen there), because it does not depend on the slot. Once the devices
// phase is done (uevent socket open, module loads under way), the copy of
// the init for the shutdown runs in the background until switch_root
// (stageShutdown). Once another
// goroutine has started the emergency policy (a panic), the sequence stops
// at the next phase.
func (b *boot) run() error {
	steps := []struct {
		name string
		fn   func() error
		then func() // started once the phase succeeded
	}{
		{"early-mounts", b.earlyMounts, nil},
		{"config", b.loadConfig, b.startStallNotices},
		{"devices", b.startDevices, b.stageShutdown},
		{"data", b.openData, nil},
		{"root", b.mountRoot, nil},
		{"report", b.writeReport, nil},
	}
	for _, s := range steps {
		if b.failed() {
			b.guard().park()
		}
		b.enterPhase(s.name)
		start := time.Now()
		err := s.fn()
		b.rep.AddPhase(s.name, start)
		b.snapshotReport()
		if err != nil {
			return err
		}
		b.log.Debugf("phase %s done in %v", s.name, time.Since(start).Round(time.Millisecond))
		if s.then != nil {
			s.then()
		}
	}
	if b.failed() {
		b.guard().park()
	}
	b.enterPhase("switch_root")
	return b.switchRoot()
}

func newBoot(start time.Time) *boot {
	return &boot{
		start: start,
		log:   newLogger(os.Stderr),
		rep:   &report.Report{Init: "/sbin/init"},
	}
}
