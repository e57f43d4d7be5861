// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	kargs "github.com/keel-boot/keel/kernel-args"
)

// Signals to PID 1. The kernel delivers to init only the signals it has a
// handler for, and the Go runtime installs one for every signal: one that
// the program did not ask for with signal.Notify and that means "terminate"
// by default (SIGTERM, SIGINT, SIGHUP, SIGALRM, …) makes the runtime raise
// it again with the default action, which the kernel drops for init, and
// then exit(2) — "Attempted to kill init", a kernel panic; SIGQUIT, or a
// fault signal sent with kill, ends in a goroutine dump and the same exit.
// Who sends them: the kernel on Ctrl-Alt-Del (SIGINT, with the default
// kernel.ctrl-alt-del of 0), and in an emergency or rd.break shell built
// from busybox, its reboot (SIGTERM), poweroff (SIGUSR2) and halt
// (SIGUSR1), or kill 1. keel takes them the way an init does (busybox
// init's meanings; docs/boot-sequence.md, "Signals").

// initSignals are the signals PID 1 asks for: those it acts on, and every
// other one whose default under the Go runtime would end the process.
var initSignals = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGHUP, unix.SIGQUIT, unix.SIGPWR, unix.SIGALRM, unix.SIGVTALRM,
	unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSTKFLT, unix.SIGIO, unix.SIGPIPE,
	unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGBUS, unix.SIGFPE,
	unix.SIGSEGV, unix.SIGILL,
}

// signalPolicy is what PID 1 does on sig: the emergency policy's reboot or
// power-off, or "" to log it and go on.
func signalPolicy(sig os.Signal) string {
	switch sig {
	case unix.SIGINT, unix.SIGTERM: // Ctrl-Alt-Del; reboot
		return kargs.EmergencyReboot
	case unix.SIGUSR1, unix.SIGUSR2: // halt; poweroff
		return kargs.EmergencyPoweroff
	}
	return ""
}

// catchSignals takes the signals to PID 1 from now on (the process's
// whole life: switch_root's exec gives the real init the defaults back)
// and hands each to onSignal, in a goroutine of its own.
func (b *boot) catchSignals() {
	b.catchSignalsWith(func(sig os.Signal) { b.onSignal(sig, b.halt) })
}

// onSignal acts on sig: a reboot or a power-off (halt, which does not
// return in PID 1) takes the emergency policy's place, so that the boot
// sequence parks at its next check and does not switch root beside it;
// during the switch itself the signal is ignored (the real init, exec'd
// next, has its own handling); in the emergency policy (its shell) it
// halts as asked. Any other signal is logged.
func (b *boot) onSignal(sig os.Signal, halt func(policy string)) {
	policy := signalPolicy(sig)
	if policy == "" {
		if sig != unix.SIGPIPE {
			b.log.Warnf("signal %v (%d) to PID 1 ignored", sig, sig.(syscall.Signal))
		}
		return
	}
	g := b.guard()
	g.mu.Lock()
	if g.switching {
		g.mu.Unlock()
		b.log.Warnf("signal %v to PID 1 ignored: the root is being switched", sig)
		return
	}
	first := !g.active
	g.active, g.aside = true, g.aside || first
	g.mu.Unlock()
	if first {
		b.prog.end()
	}
	b.log.Console("keel: %v received (Ctrl-Alt-Del, or reboot, halt or poweroff in a shell)", sig)
	halt(policy)
}

// catchSignalsWith is catchSignals with act; stop (for tests) gives the
// signals their defaults back and ends the goroutine.
func (b *boot) catchSignalsWith(act func(os.Signal)) (stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, initSignals...)
	b.goSafe("the signal handler", func() {
		for sig := range ch {
			act(sig)
		}
	})
	return func() { signal.Stop(ch); close(ch) }
}

// ignoreSignals is catchSignals for the shutdown program, which already
// ends in a reboot or a power-off: every such signal is ignored.
func ignoreSignals() { signal.Ignore(initSignals...) }
