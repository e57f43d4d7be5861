// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/report"
)

// guardedBoot is a boot whose emergency, halt and park are recorded on
// channels instead of reaching the machine.
func guardedBoot() (b *boot, emergencies chan error, halts chan string, parks chan struct{}) {
	emergencies, halts, parks = make(chan error, 4), make(chan string, 4), make(chan struct{}, 4)
	b = &boot{log: newLogger(&bytes.Buffer{}), rep: &report.Report{}}
	b.fail.emergency = func(err error) { emergencies <- err }
	b.fail.halt = func(msg string) { halts <- msg }
	b.fail.park = func() { parks <- struct{}{} }
	return b, emergencies, halts, parks
}

// TestGoroutinePanicEndsInEmergency: a goroutine of the init that panics
// starts the emergency policy with the panic; a second panic while the
// emergency runs halts with a message; the boot sequence, arriving at the
// emergency second, is parked rather than running it twice.
func TestGoroutinePanicEndsInEmergency(t *testing.T) {
	b, emergencies, halts, parks := guardedBoot()
	b.goSafe("the uevent reader", func() { panic("bad uevent") })
	err := <-emergencies
	if err == nil || !strings.Contains(err.Error(), "internal error (panic in the uevent reader): bad uevent") {
		t.Fatalf("emergency err = %v", err)
	}
	if !b.failed() {
		t.Error("failed() is false after the emergency started")
	}
	b.goSafe("a module loader", func() { panic("second") })
	if msg := <-halts; !strings.Contains(msg, "panic in a module loader during the emergency: second; halting") {
		t.Errorf("halt message %q", msg)
	}
	b.enterEmergency(errors.New("the boot sequence failed too"))
	select {
	case <-parks:
	default:
		t.Error("a second emergency was not parked")
	}
	select {
	case err := <-emergencies:
		t.Errorf("the emergency ran twice: %v", err)
	default:
	}
}

// TestPanicDuringEmergencyHalts: the emergency path itself panicking halts
// with a message instead of crashing PID 1.
func TestPanicDuringEmergencyHalts(t *testing.T) {
	b, _, halts, _ := guardedBoot()
	b.fail.emergency = func(error) { panic("report write exploded") }
	b.enterEmergency(errors.New("boot failed"))
	if msg := <-halts; !strings.Contains(msg, "panic during the emergency: report write exploded") {
		t.Errorf("halt message %q", msg)
	}
}

// TestModuleLoaderPanic: a module load that panics (in kmod's goroutine)
// fails that module and reaches the boot's emergency path.
func TestModuleLoaderPanic(t *testing.T) {
	b, emergencies, _, _ := guardedBoot()
	b.baked = &bakedconf.Config{Modules: []bakedconf.Module{{Name: "ext4", Path: "/m/ext4.ko"}}}
	b.mods = &kmod.Session{Root: "/", Loader: func(string, string) error { panic("loader bug") },
		OnPanic: func(r any) { b.panicked("a module load", r) }}
	b.background(b.baked.Modules)
	err := <-emergencies
	if err == nil || !strings.Contains(err.Error(), "internal error (panic in a module load): loader bug") {
		t.Fatalf("emergency err = %v", err)
	}
	b.waitBackground(-1)
	if len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], "module ext4: panic while loading: loader bug") {
		t.Errorf("warnings %q: want the module's failure", b.rep.Warnings)
	}
}

// TestBackgroundGoroutinePanic: a panic in the init's own background
// loader goroutine (not kmod's) reaches the emergency path too.
func TestBackgroundGoroutinePanic(t *testing.T) {
	b, emergencies, _, _ := guardedBoot()
	b.baked = &bakedconf.Config{}
	// A nil Session panics on Load: the goroutine, not the caller, fails.
	b.background([]bakedconf.Module{{Name: "x", Path: "/m/x.ko"}})
	if err := <-emergencies; err == nil || !strings.Contains(err.Error(), "panic in the background module loader") {
		t.Fatalf("emergency err = %v", err)
	}
}

// TestGoSafeThenHoldsWaiters: a goroutine whose work panics never releases
// those who wait for it, so the boot sequence cannot go on past the wait
// while the emergency policy starts (a deferred release ran before the
// recovery: waitBackground returned with failed() still false).
func TestGoSafeThenHoldsWaiters(t *testing.T) {
	b, emergencies, _, _ := guardedBoot()
	done := make(chan struct{})
	b.goSafeThen("the copy of the shutdown program", func() { panic("copy bug") }, func() { close(done) })
	if err := <-emergencies; err == nil || !strings.Contains(err.Error(), "copy bug") {
		t.Fatalf("emergency err = %v", err)
	}
	select {
	case <-done:
		t.Error("the waiters were released by a goroutine that panicked")
	default:
	}
	ok := make(chan struct{})
	b.goSafeThen("a copy that works", func() {}, func() { close(ok) })
	<-ok
}

// TestPanicWhileSwitching: once the sequence began switching root, a
// goroutine's panic is parked instead of starting the emergency policy
// beside the exec; a failed switch gives the policy back to the sequence;
// a sequence arriving after the policy started does not switch.
func TestPanicWhileSwitching(t *testing.T) {
	b, emergencies, _, parks := guardedBoot()
	if !b.beginSwitch() {
		t.Fatal("beginSwitch refused on a healthy boot")
	}
	b.goSafe("the watchdog feeder", func() { panic("late") })
	<-parks
	select {
	case err := <-emergencies:
		t.Fatalf("the emergency policy ran while switching root: %v", err)
	default:
	}
	b.endSwitch() // exec failed
	b.enterEmergency(errors.New("exec /sbin/init: no such file"))
	if err := <-emergencies; err == nil || !strings.Contains(err.Error(), "exec /sbin/init") {
		t.Errorf("emergency err = %v", err)
	}
	if b.beginSwitch() {
		t.Error("beginSwitch allowed a switch after the emergency policy started")
	}
	b.parkIfFailed()
	select {
	case <-parks:
	default:
		t.Error("parkIfFailed did not park after the emergency policy started")
	}
}

// TestSwitchFailsToEmergency: the switch's own failure, or its own panic,
// takes the sequence to the emergency policy; it used to be parked as a
// goroutine's panic during the switch, and nobody ran the policy.
func TestSwitchFailsToEmergency(t *testing.T) {
	b, emergencies, _, parks := guardedBoot()
	err := b.switching(func() error { return errors.New("move /dev: busy") })
	b.enterEmergency(err)
	if got := <-emergencies; got == nil || !strings.Contains(got.Error(), "move /dev: busy") {
		t.Errorf("after a failed switch: emergency err = %v", got)
	}

	b, emergencies, _, parks = guardedBoot()
	go func() {
		defer b.recovery()
		_ = b.switching(func() error { panic("exec bug") })
	}()
	if got := <-emergencies; got == nil || !strings.Contains(got.Error(), "exec bug") {
		t.Errorf("after a panic in the switch: emergency err = %v", got)
	}
	select {
	case <-parks:
		t.Error("the sequence's own panic in the switch was parked")
	default:
	}
}

// TestEmergencyBesideTheSequence: a goroutine's panic starts the emergency
// policy while the boot sequence goes on until its next check, writing its
// report: the policy reports the copy the sequence left at the end of its
// last phase, never b.rep (a map read beside the sequence's map write is a
// fatal error of the Go runtime, which no recover catches), and the
// sequence's own write after that keeps the failure. The sequence's own
// failure reports b.rep, all of it.
func TestEmergencyBesideTheSequence(t *testing.T) {
	reportPath = filepath.Join(t.TempDir(), "boot.json")
	t.Cleanup(func() { reportPath = report.Path })
	b, emergencies, _, _ := guardedBoot()
	b.rep = &report.Report{Init: "/sbin/init", Mode: "slot"}
	b.fail.emergency = func(err error) { b.reportFailure(err); emergencies <- err }
	b.rep.AddPhase("devices", time.Now())
	b.snapshotReport()

	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // the sequence, in its next phase
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.rep.Devices = map[string]string{"root": "/dev/dm-0"}
			b.rep.Devices[fmt.Sprint(i)] = "/dev/vda"
			if i == 0 {
				b.rep.AddPhase("data", time.Now())
				b.goSafe("the uevent reader", func() { panic("bad uevent") })
			}
		}
	}()
	<-emergencies
	close(stop)
	<-stopped
	got, err := report.Read(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Failure, "panic in the uevent reader") || got.Mode != "slot" ||
		len(got.Phases) != 1 || got.Phases[0].Name != "devices" || got.Devices != nil {
		t.Errorf("report %+v: want the copy of the end of the devices phase, with the failure", got)
	}
	if n := len(got.Warnings); n == 0 || !strings.Contains(got.Warnings[n-1], "beside the boot sequence") {
		t.Errorf("warnings %q: want the report to say whose it is", got.Warnings)
	}
	// The sequence, past its check, writes its report: the failure stays.
	if err := b.saveReport(); err != nil {
		t.Fatal(err)
	}
	if again, err := report.Read(reportPath); err != nil || again.Failure != got.Failure {
		t.Errorf("after the sequence's write: %+v, %v: want the failure kept", again, err)
	}

	// The sequence's own failure: b.rep as it stands.
	reportPath = filepath.Join(t.TempDir(), "boot.json")
	b, emergencies, _, _ = guardedBoot()
	b.rep = &report.Report{Init: "/sbin/init", Devices: map[string]string{"root": "/dev/dm-0"}}
	b.fail.emergency = func(err error) { b.reportFailure(err); emergencies <- err }
	b.rep.AddPhase("devices", time.Now())
	b.snapshotReport()
	b.rep.AddPhase("data", time.Now())
	b.enterEmergency(errors.New("no bootable slot"))
	<-emergencies
	if got, err := report.Read(reportPath); err != nil || got.Failure != "no bootable slot" || len(got.Phases) != 2 || got.Devices["root"] != "/dev/dm-0" {
		t.Errorf("report %+v, %v: want b.rep with the failure", got, err)
	}
}

// TestEmergencyBesideTheSequenceBeforeAPhase: with no phase ended yet, the
// report of such an emergency holds the failure and says why no more.
func TestEmergencyBesideTheSequenceBeforeAPhase(t *testing.T) {
	reportPath = filepath.Join(t.TempDir(), "boot.json")
	t.Cleanup(func() { reportPath = report.Path })
	b, emergencies, _, _ := guardedBoot()
	b.fail.emergency = func(err error) { b.reportFailure(err); emergencies <- err }
	b.goSafe("the stall notice", func() { panic("nil map") })
	<-emergencies
	got, err := report.Read(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if got.Failure != "internal error (panic in the stall notice): nil map" || len(got.Warnings) != 1 ||
		!strings.Contains(got.Warnings[0], "with only the failure: the boot sequence had not ended a phase") {
		t.Errorf("report %+v: want the failure, and why there is nothing else", got)
	}
}
