// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

// TestSignalsReachPID1: every signal whose default under the Go runtime
// would end the process reaches the init's handler instead (without
// signal.Notify this test's process dies of the first one, as PID 1 did:
// "Attempted to kill init").
func TestSignalsReachPID1(t *testing.T) {
	b := &boot{log: newLogger(&bytes.Buffer{}), rep: &report.Report{}}
	got := make(chan os.Signal, len(initSignals))
	stop := b.catchSignalsWith(func(sig os.Signal) { got <- sig })
	defer stop()
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGALRM, unix.SIGUSR2, unix.SIGXCPU, unix.SIGABRT, unix.SIGSEGV} {
		if err := unix.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != sig {
			t.Errorf("sent %v, the handler got %v", sig, s)
		}
	}
}

func TestSignalPolicy(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		unix.SIGINT: kargs.EmergencyReboot, unix.SIGTERM: kargs.EmergencyReboot,
		unix.SIGUSR1: kargs.EmergencyPoweroff, unix.SIGUSR2: kargs.EmergencyPoweroff,
		unix.SIGHUP: "", unix.SIGQUIT: "", unix.SIGPWR: "", unix.SIGPIPE: "", unix.SIGALRM: "",
	} {
		if got := signalPolicy(sig); got != want {
			t.Errorf("signalPolicy(%v) = %q, want %q", sig, got, want)
		}
	}
}

// TestShutdownIgnoresSignals: the shutdown program, PID 1 too, ignores
// them all.
func TestShutdownIgnoresSignals(t *testing.T) {
	defer signal.Reset(initSignals...)
	ignoreSignals()
	for _, sig := range []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGALRM, unix.SIGUSR1} {
		if !signal.Ignored(sig) {
			t.Errorf("%v is not ignored", sig)
		}
	}
}

// TestSignalTakesThePolicysPlace: a reboot or power-off asked by a signal
// starts in the emergency policy's place, so the boot sequence parks and
// does not switch root beside the halt's sync; during the switch the signal
// is ignored; in the emergency shell (the policy running) it halts as
// asked; another signal only says so.
func TestSignalTakesThePolicysPlace(t *testing.T) {
	b, emergencies, _, _ := guardedBoot()
	var halted []string
	halt := func(policy string) { halted = append(halted, policy) }
	b.onSignal(unix.SIGHUP, halt)
	if len(halted) != 0 || b.failed() {
		t.Fatalf("SIGHUP: halted %v, failed %v: want it ignored", halted, b.failed())
	}
	b.onSignal(unix.SIGTERM, halt)
	if !slices.Equal(halted, []string{kargs.EmergencyReboot}) || !b.failed() || b.beginSwitch() {
		t.Errorf("SIGTERM: halted %v, failed %v: want a reboot in the policy's place, and no switch of root", halted, b.failed())
	}
	b.enterEmergency(errors.New("the boot sequence failed too"))
	select {
	case err := <-emergencies:
		t.Errorf("the emergency policy ran beside the signal's reboot: %v", err)
	default:
	}
	b.onSignal(unix.SIGUSR2, halt) // poweroff typed in the emergency shell
	if !slices.Equal(halted, []string{kargs.EmergencyReboot, kargs.EmergencyPoweroff}) {
		t.Errorf("SIGUSR2 in the policy: halted %v, want a power-off", halted)
	}

	b, _, _, _ = guardedBoot()
	halted = nil
	if !b.beginSwitch() {
		t.Fatal("beginSwitch refused on a fresh boot")
	}
	b.onSignal(unix.SIGINT, halt)
	if len(halted) != 0 || b.failed() {
		t.Errorf("SIGINT during the switch: halted %v, failed %v: want it left to the real init", halted, b.failed())
	}
}
