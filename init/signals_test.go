// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/signal"
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
