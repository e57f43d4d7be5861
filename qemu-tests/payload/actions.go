// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/qemu-tests/report"
)

// runActions performs the keel.test.* actions of cmdline in order.
func runActions(p printer, s system, cmdline string) {
	actions, errs := report.Actions(cmdline)
	for _, err := range errs {
		p.err("%v", err)
	}
	for _, a := range actions {
		switch a.Param {
		case report.ParamWrite:
			p.line(report.KeyWrite, a.Path+": "+writeResult(s, a))
		case report.ParamCat:
			content, missing, err := readFile(s, a.Path)
			if err != nil {
				p.err("%s=%s: %v", a.Param, a.Path, err)
				continue
			}
			p.line(report.KeyCat, a.Path+": "+report.QuoteFile(content, missing))
		}
	}
}

// writeResult writes the action's file durably (a test may cut the power
// next) and returns "ok" or "error: …".
func writeResult(s system, a report.Action) string {
	if err := writeSynced(s.path(a.Path), []byte(a.Content)); err != nil {
		return report.KeyError + ": " + err.Error()
	}
	return "ok"
}

func writeSynced(name string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", name, err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s for writing: %w", name, err)
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	unix.Sync() // the directory entry too, whatever the file system
	return nil
}
