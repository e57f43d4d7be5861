// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keel-boot/keel/qemu-tests/report"
)

// system is what the payload needs from the machine, so run can be tested on
// the host against a temporary directory.
type system struct {
	root    string // "/" on the machine
	args    []string
	environ []string
	pid     int
	mount   func(source, target, fstype string) error
}

// path returns p (absolute, as the guest sees it) under s.root.
func (s system) path(p string) string { return filepath.Join(s.root, p) }

// printer writes payload lines, one write each, so that kernel messages on
// the same console cannot split a line.
type printer struct{ w io.Writer }

func (p printer) line(key, value string) { fmt.Fprintln(p.w, report.Line(key, value)) }

func (p printer) err(format string, a ...any) {
	p.line(report.KeyError, fmt.Sprintf(format, a...))
}

// run prints the report and performs the test actions; it returns only to
// let the caller power off.
func run(w io.Writer, s system) {
	p := printer{w}
	p.line(report.KeyStart, "")
	if err := ensureProc(s); err != nil {
		p.err("%v", err)
	}
	p.line(report.KeyPID, strconv.Itoa(s.pid))
	p.line(report.KeyArgv, jsonList(s.args))
	p.line(report.KeyEnviron, jsonList(s.environ))
	cmdline, err := os.ReadFile(s.path("/proc/cmdline"))
	if err != nil {
		p.err("read /proc/cmdline: %v", err)
	}
	p.line(report.KeyCmdline, strings.TrimSpace(string(cmdline)))
	printMounts(p, s)
	printBootJSON(p, s)
	p.line(report.KeyRootWritable, rootWritable(s))
	content, missing, err := readFile(s, "/etc/keel-test-marker")
	if err != nil {
		p.err("%v", err)
	}
	p.line(report.KeyMarker, report.QuoteFile(content, missing))
	runActions(p, s, string(cmdline))
	p.line(report.KeyDone, "")
}

// ensureProc mounts /proc unless keel moved it into the new root already.
func ensureProc(s system) error {
	if _, err := os.Stat(s.path("/proc/self")); err == nil {
		return nil
	}
	if err := os.MkdirAll(s.path("/proc"), 0o555); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := s.mount("proc", s.path("/proc"), "proc"); err != nil {
		return fmt.Errorf("mount proc on /proc: %w", err)
	}
	return nil
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

func printMounts(p printer, s system) {
	p.line(report.KeyMounts, "")
	b, err := os.ReadFile(s.path("/proc/mounts"))
	if err != nil {
		p.err("read /proc/mounts: %v", err)
		return
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			p.line(report.KeyMount, l)
		}
	}
}

// printBootJSON prints keel's boot report compacted to one line.
func printBootJSON(p printer, s system) {
	const name = "/run/keel/boot.json"
	b, missing, err := readFile(s, name)
	switch {
	case err != nil:
		p.err("%v", err)
	case missing:
		p.line(report.KeyBootJSON, report.Missing)
	default:
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			p.err("%s is not JSON: %v: %q", name, err, b)
			return
		}
		p.line(report.KeyBootJSON, buf.String())
	}
}

// rootWritable tries to create and remove a file in /.
func rootWritable(s system) string {
	name := s.path("/.keel-write-test")
	if err := os.WriteFile(name, []byte("keel\n"), 0o644); err != nil {
		return "no: " + err.Error()
	}
	if err := os.Remove(name); err != nil {
		return "yes, but removing it failed: " + err.Error()
	}
	return "yes"
}

// readFile reads a guest file; a missing file is not an error.
func readFile(s system, name string) (content []byte, missing bool, err error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	return b, false, nil
}
