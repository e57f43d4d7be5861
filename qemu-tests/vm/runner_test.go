// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQEMU puts a qemu-system-x86_64 first in PATH that runs script (sh)
// and counts its runs in the returned file.
func fakeQEMU(t *testing.T, script string) (runs string) {
	t.Helper()
	dir := t.TempDir()
	runs = filepath.Join(dir, "runs")
	body := "#!/bin/sh\necho run >> " + runs + "\nn=$(wc -l < " + runs + ")\n" + script
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return runs
}

func fakeKernel(t *testing.T) string {
	t.Helper()
	k := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(k, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func countRuns(t *testing.T, runs string) int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

// TestRelaunchEarly: QEMU aborting by itself, its guest's kernel reporting
// a lockup (then QEMU is killed), or panicking on its early timer check
// (QEMU exits by itself), before the guest's init ran is
// started again, once, and the test sees only the second run; the log keeps
// the first run and says why.
func TestRelaunchEarly(t *testing.T) {
	lockup := "[   28.529310] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [cryptomgr_test:52]"
	const timerPanic = "[    0.012000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug and send a report.  Then try booting with the 'noapic' option."
	for name, tc := range map[string]struct{ first, note, kept string }{
		"crash":  {`echo "pci 0000:00:01.0: BAR 1"; kill -ABRT $$`, "QEMU crashed (signal: aborted) before the guest ran /init", "BAR 1"},
		"lockup": {`echo "` + lockup + `"; exec sleep 600`, "the guest's kernel failed (" + lockup + ") before the guest ran /init", lockup},
		// The kernel panics at 0.01 s and reboots: -no-reboot ends QEMU, status 0.
		"early panic": {`echo "` + timerPanic + `"; exit 0`, "the guest's kernel failed (" + timerPanic + ") before the guest ran /init", timerPanic},
	} {
		t.Run(name, func(t *testing.T) {
			runs := fakeQEMU(t, `if [ "$n" = 1 ]; then `+tc.first+`; fi
echo "`+initStarted+`"
echo "keel: up"
`)
			v := Start(t, Options{Kernel: fakeKernel(t)})
			if line := v.Expect("keel: up"); line != "keel: up" {
				t.Errorf("matched %q: want the second run's line only", line)
			}
			v.Wait()
			if n := countRuns(t, runs); n != 2 {
				t.Errorf("QEMU ran %d times, want 2", n)
			}
			log, err := os.ReadFile(v.LogPath())
			if err != nil || !strings.Contains(string(log), tc.note+": starting it again") || !strings.Contains(string(log), tc.kept) {
				t.Errorf("log %s: want the first run's lines and the restart's note (%v):\n%s", v.LogPath(), err, log)
			}
		})
	}
}

// TestRelaunchSilentKernel: a kernel that printed its boot and then nothing
// for earlySilence before /init is killed and started again, once; a quiet
// kernel's silence, or one that goes on printing, is not.
func TestRelaunchSilentKernel(t *testing.T) {
	defer func(d time.Duration) { earlySilence = d }(earlySilence)
	const stall = "[    1.731819] VFS: Dquot-cache hash table entries: 512 (order 0, 4096 bytes)"
	for name, tc := range map[string]struct {
		first   string
		silence time.Duration
		runs    int
	}{
		"stalled": {`echo "[    0.000000] Linux version 6.1.0-57-amd64"; echo "` + stall + `"; exec sleep 600`, 2 * time.Second, 2},
		"quiet":   {`sleep 3`, 2 * time.Second, 1},
		// Printing for longer than the silence allowed, with gaps twelve
		// times shorter than it: the machines are shared, and a starved
		// host stretched gaps of 0.2 s past a 2 s silence.
		"slow": {`echo "[    0.000000] Linux version 6.1.0-57-amd64"; for i in $(seq 16); do sleep 0.5; echo "[    $i.0] still booting"; done`, 6 * time.Second, 1},
	} {
		t.Run(name, func(t *testing.T) {
			earlySilence = tc.silence
			runs := fakeQEMU(t, `if [ "$n" = 1 ]; then `+tc.first+`; fi
echo "`+initStarted+`"
echo "keel: up"
`)
			v := Start(t, Options{Kernel: fakeKernel(t)})
			v.Expect("keel: up")
			v.Wait()
			if n := countRuns(t, runs); n != tc.runs {
				t.Errorf("QEMU ran %d times, want %d", n, tc.runs)
			}
			log, _ := os.ReadFile(v.LogPath())
			silence, _ := scaled(earlySilence) // KEEL_QEMU_TIMEOUT_SCALE applies
			if note := fmt.Sprintf("no console output for %v after %q", silence, stall); tc.runs == 2 && !strings.Contains(string(log), note) {
				t.Errorf("log: want %q:\n%s", note, log)
			}
		})
	}
}

// TestNoRelaunchAfterInit: a crash once the guest's init runs (the disks
// may have changed) or a second early crash ends the run with QEMU's
// error.
func TestNoRelaunchAfterInit(t *testing.T) {
	for name, script := range map[string]string{
		"after init":    `echo "` + initStarted + `"; kill -ABRT $$`,
		"crashes again": `echo "pci 0000:00:01.0"; kill -ABRT $$`,
	} {
		t.Run(name, func(t *testing.T) {
			runs := fakeQEMU(t, script)
			v := Start(t, Options{Kernel: fakeKernel(t)})
			<-v.done
			if v.exitErr == nil || !strings.Contains(v.exitErr.Error(), "abort") {
				t.Errorf("exit: %v, want QEMU's abort", v.exitErr)
			}
			want := 1
			if name == "crashes again" {
				want = 2
			}
			if n := countRuns(t, runs); n != want {
				t.Errorf("QEMU ran %d times, want %d", n, want)
			}
		})
	}
}

// TestLockupAfterRestart: a lockup in the run that was already started again
// still ends it at once (QEMU killed), and the failure names the lockup.
func TestLockupAfterRestart(t *testing.T) {
	runs := fakeQEMU(t, `if [ "$n" = 1 ]; then kill -ABRT $$; fi
echo "[   21.0] rcu: INFO: rcu_preempt self-detected stall on CPU"; exec sleep 600
`)
	v := Start(t, Options{Kernel: fakeKernel(t)})
	<-v.done
	if n := countRuns(t, runs); n != 2 {
		t.Errorf("QEMU ran %d times, want 2", n)
	}
	lockup := v.lockupReport()
	if v.exitErr == nil || !strings.Contains(v.exitErr.Error(), "killed") || lockup != "[   21.0] rcu: INFO: rcu_preempt self-detected stall on CPU" {
		t.Errorf("exit %v, lockup %q: want QEMU killed for the second run's stall", v.exitErr, lockup)
	}
}

// TestRestartForgetsLockup: once the run is started again after a lockup,
// a later end of it is not blamed on that lockup.
func TestRestartForgetsLockup(t *testing.T) {
	fakeQEMU(t, `if [ "$n" = 1 ]; then echo "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!"; exec sleep 600; fi
echo "`+initStarted+`"; kill -ABRT $$
`)
	v := Start(t, Options{Kernel: fakeKernel(t)})
	<-v.done
	lockup := v.lockupReport()
	if lockup != "" || v.exitErr == nil || !strings.Contains(v.exitErr.Error(), "abort") {
		t.Errorf("exit %v, lockup %q: want the second run's abort alone", v.exitErr, lockup)
	}
}

// TestNoRelaunchLockupAfterInit: a lockup once the guest's init runs is
// left to the test (the disks may have changed): QEMU is not killed.
func TestNoRelaunchLockupAfterInit(t *testing.T) {
	runs := fakeQEMU(t, `echo "`+initStarted+`"
echo "[   40.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
sleep 1
echo "still running"
`)
	v := Start(t, Options{Kernel: fakeKernel(t)})
	v.Expect("still running")
	v.Wait()
	if n := countRuns(t, runs); n != 1 {
		t.Errorf("QEMU ran %d times, want 1", n)
	}
}

func TestEarlyLockup(t *testing.T) {
	for _, tc := range []struct {
		out, lockup string
		initRan     bool
	}{
		{"[ 1.0] Freeing initrd memory\n", "", false},
		{"[ 2.0] alg: ok\n[ 28.5] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [x:52]\n[ 28.5] Modules linked in:\n", "[ 28.5] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [x:52]", false},
		{"[ 21.0] rcu: INFO: rcu_preempt self-detected stall on CPU", "[ 21.0] rcu: INFO: rcu_preempt self-detected stall on CPU", false},
		{"[ 2.3] " + initStarted + "\n[ 30.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\n", "", true},
	} {
		c := newConsole(nil, time.Now())
		_, _ = c.Write([]byte(tc.out))
		_, lockup, initRan := c.earlyLockup()
		if lockup != tc.lockup || initRan != tc.initRan {
			t.Errorf("%q: lockup %q, init ran %v; want %q, %v", tc.out, lockup, initRan, tc.lockup, tc.initRan)
		}
	}
}
