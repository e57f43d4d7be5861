// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/report"
)

// Kernel messages that end a run under -no-reboot.
const (
	PowerOffMessage = "reboot: Power down"
	RebootMessage   = "reboot: Restarting system"
	PanicMessage    = "Kernel panic - not syncing"
)

// tailLines is how much console a failed expectation shows.
const tailLines = 40

// VM is one running QEMU guest. Its methods fail the test that started it.
type VM struct {
	t       testing.TB
	timeout time.Duration
	console *console
	qemu    string
	args    []string
	logPath string
	killed  atomic.Bool
	done    chan struct{} // closed when QEMU has exited; exitErr is set then
	exitErr error

	mu    sync.Mutex // cmd and stdin: replaced when QEMU is started again
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// restarted: QEMU crashed, or its guest's kernel locked up, before
	// the guest's init ran, and it was started again, once (relaunch).
	restarted bool
	// lockup is the kernel's lockup report that made watchLockup kill
	// QEMU before the guest's init ran; "" otherwise.
	lockup string
}

// Start boots a guest and returns at once; the console is read in the
// background. QEMU is killed when the test ends, if it still runs. Start
// first waits for one of KEEL_QEMU_JOBS slots, held until QEMU exits, so
// tests may call t.Parallel freely (a test that runs two guests at the same
// time needs two slots).
func Start(t testing.TB, o Options) *VM {
	t.Helper()
	qemu := needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	if o.Kernel == "" {
		o.Kernel = Kernel(t)
	}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	k, note := bootKernel(o.Kernel)
	if note != "" {
		t.Log(note)
	}
	o.Kernel = k
	timeout, err := scaled(o.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	v := &VM{t: t, timeout: timeout, args: qemuArgs(o, kvmRequested()), done: make(chan struct{})}
	logf := v.openLog()
	release := shared.acquire()
	if err := v.start(qemu, logf, release); err != nil {
		release()
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { v.cleanup(logf) })
	return v
}

// openLog creates qemu-tests/.cache/logs/<TestName>.log, headed by the
// command line that reproduces the run.
func (v *VM) openLog() *os.File {
	dir, err := harnessDir("logs")
	if err != nil {
		v.t.Fatal(err)
	}
	v.logPath = filepath.Join(dir, shared.logName(safeName(v.t.Name())))
	f, err := os.Create(v.logPath)
	if err != nil {
		v.t.Fatalf("console log: %v", err)
	}
	fmt.Fprintf(f, "# %s\n", quoteArgs(append([]string{"qemu-system-x86_64"}, v.args...)))
	return f
}

// safeName turns a test name into a file name.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
}

func (v *VM) start(qemu string, logf *os.File, release func()) error {
	v.qemu = qemu
	r, err := v.launch()
	if err != nil {
		return err
	}
	v.console = newConsole(logf, time.Now())
	go v.pump(r, release)
	go v.watchLockup()
	return nil
}

// watchLockup kills QEMU when the guest's kernel reports a lockup before it
// ran the initramfs's /init, so that pump starts the run again (relaunch).
// Under TCG the Debian kernel was once seen stuck for good in its boot-time
// crypto self-tests (cryptomgr_test at a patched NOP in alg_test, "BUG: soft
// lockup - CPU#1 stuck for 26s!"), 2 s into the boot: keel had not run, the
// disks were untouched, and the test waited out its two minutes.
//
// A kernel that stops printing before /init for earlySilence is taken for
// locked up too: under TCG on a loaded host the Debian kernel was seen
// silent for good 1.7 s into its boot (after "VFS: Dquot-cache hash table
// entries"), with no lockup report, its timers stopped with it. Only a
// kernel that prints its boot (no quiet) is judged so.
func (v *VM) watchLockup() {
	silence, err := scaled(earlySilence)
	if err != nil {
		silence = earlySilence // Start has failed the test already
	}
	for {
		changed, lockup, initRan := v.console.earlyLockup()
		switch {
		case initRan:
			return
		case lockup != "":
			v.killForLockup(lockup)
			return
		}
		select {
		case <-changed:
		case <-v.done:
			return
		case <-time.After(silence):
			if last := v.console.silentKernel(); last != "" {
				v.killForLockup(fmt.Sprintf("no console output for %v after %q", silence, last))
				return
			}
		}
	}
}

// earlySilence is how long a kernel that prints its boot may be silent
// before /init (its longest gaps under TCG are a few seconds); a variable
// for tests.
var earlySilence = 60 * time.Second

// killForLockup kills QEMU for lockup, which pump then starts again.
func (v *VM) killForLockup(lockup string) {
	if v.killed.Load() {
		return
	}
	v.mu.Lock()
	v.lockup = lockup
	v.mu.Unlock()
	v.killProcess()
}

// lockupReport is the lockup watchLockup killed QEMU for, "" if none
// (or once the run was started again).
func (v *VM) lockupReport() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lockup
}

// launch starts QEMU and returns the read end of its console.
func (v *VM) launch() (*os.File, error) {
	cmd := exec.Command(v.qemu, v.args...)
	// Should the test binary die (a go test -timeout), QEMU dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("qemu stdin: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("qemu console pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w // QEMU's own errors land in the log too
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", v.qemu, err)
	}
	w.Close()
	v.mu.Lock()
	v.cmd, v.stdin = cmd, stdin
	v.mu.Unlock()
	return r, nil
}

// pump copies the console until QEMU exits, then records how it exited.
// QEMU crashing by itself before the guest ran its init is started again,
// once (relaunch).
func (v *VM) pump(r *os.File, release func()) {
	for {
		_, _ = io.Copy(v.console, r) // ends with EOF when QEMU exits
		r.Close()
		v.mu.Lock()
		cmd := v.cmd
		v.mu.Unlock()
		err := cmd.Wait()
		if next := v.relaunch(err); next != nil {
			r = next
			continue
		}
		v.exitErr = err
		break
	}
	release()
	v.console.close() // first: the held bytes are in Output() once done is closed
	close(v.done)
}

// initStarted is the kernel's line when it runs the initramfs's /init:
// before it, the guest has read its disks but written nothing to them.
const initStarted = "Run /init as init process"

// relaunch starts QEMU again after err if err is QEMU's own crash (killed
// by a signal it raised, such as an assertion's SIGABRT: QEMU 7.2 under
// TCG once aborted in msix_table_mmio_write while the guest kernel
// enumerated PCI), or watchLockup's kill after a kernel lockup, or the
// kernel's early panic (lockupMarks: QEMU exits by itself), before the
// guest ran its init and before any expectation matched, and it was not
// started again already: the disks are then as they were, and the run is
// the same run. It returns the new console pipe, or nil to end the run
// with err.
func (v *VM) relaunch(err error) *os.File {
	if v.killed.Load() || v.restarted {
		return nil
	}
	lockup := v.lockupReport()
	if lockup == "" {
		// A panic (-no-reboot: QEMU exits at once) may end the run
		// before watchLockup saw its line.
		if _, l, ran := v.console.earlyLockup(); !ran {
			lockup = l
		}
	}
	var exit *exec.ExitError
	var what string
	switch {
	case lockup != "":
		what = fmt.Sprintf("the guest's kernel failed (%s)", lockup)
	case !errors.As(err, &exit):
		return nil
	default:
		if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() == syscall.SIGKILL {
			return nil
		}
		what = fmt.Sprintf("QEMU crashed (%v)", err)
	}
	if !v.console.restart(fmt.Sprintf("keel-tests: %s before the guest ran %s: starting it again", what, "/init")) {
		return nil
	}
	v.mu.Lock()
	v.restarted, v.lockup = true, "" // the lockup, if any, was the first run's
	v.mu.Unlock()
	if v.killed.Load() {
		return nil
	}
	r, lerr := v.launch()
	if lerr != nil {
		v.t.Logf("%s before the guest's init and could not be started again: %v", what, lerr)
		return nil
	}
	v.t.Logf("%s before the guest's init: started again (%s)", what, v.logPath)
	if v.killed.Load() { // Kill came in between: it may have missed the new process
		v.killProcess()
	}
	return r
}

// killProcess kills the current QEMU process (it may have exited).
func (v *VM) killProcess() {
	v.mu.Lock()
	defer v.mu.Unlock()
	_ = v.cmd.Process.Kill()
}

func (v *VM) cleanup(logf *os.File) {
	select {
	case <-v.done:
	default:
		v.killed.Store(true)
		v.killProcess() // it may exit on its own meanwhile
		<-v.done
	}
	v.mu.Lock()
	v.stdin.Close()
	v.mu.Unlock()
	logf.Close()
	if v.t.Failed() {
		v.t.Logf("console log: %s\nreproduce: %s", v.logPath, quoteArgs(append([]string{v.qemu}, v.args...)))
	}
}

// Expect waits for s to appear on the console after the previous match and
// returns its line (as far as printed). Unlike ExpectRegexp it also matches
// in a line not yet ended, such as a shell prompt.
//
// A kernel line printed inside a program's unfinished line is moved to
// its own line before it (see console), or after the cursor when an
// expectation already matched in that line: expect a kernel line and a
// prompt it may cut in either order, not one after the other.
func (v *VM) Expect(s string) string {
	v.t.Helper()
	b, start, end, err := v.console.expect(substring(s), v.timeout)
	if err != nil {
		v.fail(fmt.Sprintf("expect %q", s), err)
	}
	return lineAround(b, start, end)
}

// ExpectRegexp waits for a complete console line after the previous match
// to match re (multi-line mode: ^ and $ match at line boundaries) and
// returns the match and its submatches.
func (v *VM) ExpectRegexp(re string) []string {
	v.t.Helper()
	rx, err := regexp.Compile("(?m)" + re)
	if err != nil {
		v.t.Fatalf("expect regexp %q: %v", re, err)
	}
	b, start, end, err := v.console.expect(completeLines(rx), v.timeout)
	if err != nil {
		v.fail(fmt.Sprintf("expect regexp %q", re), err)
	}
	return rx.FindStringSubmatch(string(b[start:end]))
}

// ExpectReport waits for the payload's last line and returns its report.
func (v *VM) ExpectReport() report.Report {
	v.t.Helper()
	v.Expect(report.Line(report.KeyDone, ""))
	r, err := report.Parse(strings.Split(v.console.String(), "\n"))
	if err != nil {
		v.fail("payload report", err)
	}
	return r
}

// ExpectPowerOff waits for the kernel to power off and QEMU to exit.
func (v *VM) ExpectPowerOff() {
	v.t.Helper()
	v.Expect(PowerOffMessage)
	v.Wait()
}

// ExpectReboot waits for the kernel to restart, which ends QEMU (-no-reboot).
func (v *VM) ExpectReboot() {
	v.t.Helper()
	v.Expect(RebootMessage)
	v.Wait()
}

// Send types text into the serial console (the emergency shell's input).
func (v *VM) Send(text string) {
	v.t.Helper()
	v.mu.Lock()
	stdin := v.stdin
	v.mu.Unlock()
	if _, err := io.WriteString(stdin, text); err != nil {
		v.t.Fatalf("send %q to the console: %v", text, err)
	}
}

// Wait waits for QEMU to exit, failing the test if it does not within the
// timeout or exits with an error (unless Kill stopped it).
func (v *VM) Wait() {
	v.t.Helper()
	select {
	case <-v.done:
	case <-time.After(v.timeout):
		v.fail("wait for QEMU to exit", fmt.Errorf("still running after %v", v.timeout))
	}
	if v.exitErr != nil && !v.killed.Load() {
		v.fail("QEMU", fmt.Errorf("exited with %w", v.exitErr))
	}
}

// Kill stops QEMU at once, like pulling the power cord, and waits for it.
func (v *VM) Kill() {
	v.killed.Store(true)
	v.killProcess() // fails only if QEMU already exited
	<-v.done
}

// Output returns everything the console printed so far.
func (v *VM) Output() string { return v.console.String() }

// LogPath returns the file the console is logged to.
func (v *VM) LogPath() string { return v.logPath }

// fail ends the test with what was expected, why it failed, and the end of
// the console.
func (v *VM) fail(what string, err error) {
	v.t.Helper()
	if err == errExited {
		<-v.done
		err = fmt.Errorf("QEMU exited (%s) first", exitStatus(v.exitErr))
		if lockup := v.lockupReport(); lockup != "" { // killed by watchLockup, not started again
			err = fmt.Errorf("%w, killed after the guest's kernel locked up before its init: %s", err, lockup)
		}
	}
	v.t.Fatalf("%s: %v\nlast %d console lines:\n\t%s\nfull log: %s",
		what, err, tailLines, strings.Join(v.console.tail(tailLines), "\n\t"), v.logPath)
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
