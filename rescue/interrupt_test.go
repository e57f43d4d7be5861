// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shellEnv makes the test binary the rescue shell (Main, reading commands
// from standard input), for tests that need it in a process of its own.
const shellEnv = "KEEL_RESCUE_TEST_SHELL"

func TestMain(m *testing.M) {
	if os.Getenv(shellEnv) == "1" {
		os.Exit(Main([]string{"sh"}))
	}
	os.Exit(m.Run())
}

// hung bounds a wait that only a hang would reach; no test compares times.
const hung = 30 * time.Second

// output collects a shell's standard output and error.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds text, or fails the test on a hang.
func (o *output) waitFor(t *testing.T, text, doing string) {
	t.Helper()
	for end := time.Now().Add(hung); !strings.Contains(o.String(), text); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: no %q after %v; output:\n%s", doing, text, hung, o.String())
		}
	}
}

// TestCtrlCInterruptsBuiltin: Ctrl-C (SIGINT to the shell's process group,
// as a terminal sends it) ends a built-in that would not end by itself,
// with status 130; the rest of its line does not run and the shell reads
// the next one. Built-ins run inside the shell, which discarded the
// signal: `sleep`, `cat` of a disk or a FIFO, `dd` held the only console of
// a failed boot until a power cycle (found by a review).
func TestCtrlCInterruptsBuiltin(t *testing.T) {
	// "echo ready 1>&2 | X" says X is running: one pipeline, which one
	// Ctrl-C interrupts.
	for _, tc := range []struct {
		name, line string
		ready      func(t *testing.T, dir string, in *os.File, out *output)
	}{
		{"sleep", "echo ready 1>&2 | sleep 100", nil},
		{"cat of an endless device", "echo ready 1>&2 | cat /dev/zero > /dev/null", nil},
		{"dd", "echo ready 1>&2 | dd if=/dev/zero of=/dev/null bs=1M", nil},
		{"hexdump", "echo ready 1>&2 | hexdump -C /dev/zero", nil},
		{"FIFO without a writer", "echo ready 1>&2 | cat fifo", nil},
		{"FIFO whose writer writes nothing", "cat fifo", func(t *testing.T, dir string, _ *os.File, _ *output) {
			// Opening the writing end succeeds once cat has the other.
			for end := time.Now().Add(hung); ; time.Sleep(10 * time.Millisecond) {
				w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
				if err == nil {
					t.Cleanup(func() { w.Close() })
					return
				}
				if !errors.Is(err, syscall.ENXIO) || time.Now().After(end) {
					t.Fatalf("opening the FIFO's writing end: %v", err)
				}
			}
		}},
		{"the shell's own input", "cat", func(t *testing.T, _ string, in *os.File, out *output) {
			// Typed once the shell has read its line (as a terminal gives
			// lines), so that cat reads it. The next line typed after
			// Ctrl-C must reach the shell, not a read cat left behind.
			for end := time.Now().Add(hung); ; time.Sleep(10 * time.Millisecond) {
				n, err := unix.IoctlGetInt(int(in.Fd()), unix.TIOCINQ)
				if err != nil || time.Now().After(end) {
					t.Fatalf("the shell does not read its line (%d bytes left): %v", n, err)
				}
				if n == 0 {
					break
				}
			}
			if _, err := in.WriteString("typed\n"); err != nil {
				t.Fatal(err)
			}
			out.waitFor(t, "typed", "cat of the input")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			r, in, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			out := &output{}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), shellEnv+"=1")
			cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, r, out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			var waitErr error
			exited := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(exited) }()
			defer func() {
				select {
				case <-exited:
				default:
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-exited
				}
			}()

			out.waitFor(t, "keel# ", "start")
			if _, err := in.WriteString(tc.line + "; echo after\n"); err != nil {
				t.Fatal(err)
			}
			if tc.ready == nil {
				out.waitFor(t, "ready", tc.line)
			} else {
				tc.ready(t, dir, in, out)
			}
			// What the terminal does on ^C: SIGINT to the whole group.
			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			out.waitFor(t, "interrupted", "Ctrl-C")
			if _, err := in.WriteString("echo status=$?\n"); err != nil {
				t.Fatal(err)
			}
			out.waitFor(t, "status=130", "the next line")
			in.Close()
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("shell: %v", waitErr)
				}
			case <-time.After(hung):
				t.Fatalf("the shell did not end at the end of its input; output:\n%s", out.String())
			}
			if o := out.String(); strings.Contains(o, "after") {
				t.Errorf("the rest of the line ran after Ctrl-C; output:\n%s", o)
			}
		})
	}
}
