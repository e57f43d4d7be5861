// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"

	"github.com/keel-boot/keel/report"
)

// reportPath is where the report is written; a variable for tests.
var reportPath = report.Path

// writeReport is the report phase: it waits for the background module
// loads, names late strays (a late second system disk stops the boot), and
// writes /run/keel/boot.json.
func (b *boot) writeReport() error {
	b.waitBackground(-1)
	b.parkIfFailed() // a panic elsewhere may have started the emergency policy meanwhile
	b.settleWatchdog()
	err := b.reportStrays()
	if err == nil {
		err = b.reportAmbiguous()
	}
	b.diskNotes() // of the disks those read
	if err != nil {
		return err
	}
	if err := b.saveReport(); err != nil {
		// The report is for monitoring; its loss must not stop the boot.
		b.log.Warnf("%v", err)
	}
	return nil
}

// The report of a failed boot. The boot sequence writes b.rep, and only
// it: a goroutine that panicked and started the emergency policy beside it
// (panicked) must not read b.rep, which the sequence may be
// writing until its next check parks it (a map read beside a map write is a
// fatal error of the Go runtime, not a panic: the end of PID 1). The
// sequence therefore leaves a copy of its report at the end of each phase
// (snapshotReport), and such an emergency reports that copy, its failure
// and the watchdog. Once a failure's report is written, the sequence's own
// writes (it may be past its check) are dropped: boot.json keeps the
// failure.

// snapshotReport keeps a copy of the report as it stands, for an emergency
// started beside the sequence. Called by the boot sequence only.
func (b *boot) snapshotReport() {
	doc, err := b.rep.Marshal()
	if err != nil {
		b.log.Debugf("boot report copy: %v", err)
		return
	}
	b.repSnap.Store(&doc)
}

// failureReport is the report the emergency policy writes: b.rep when the
// boot sequence runs the policy, else a copy of the sequence's last
// snapshot (or a report that says there is none).
func (b *boot) failureReport() *report.Report {
	if !b.policyAside() {
		return b.rep
	}
	rep := &report.Report{Init: "/sbin/init"}
	var why error = errors.New("the boot sequence had not ended a phase")
	if doc := b.repSnap.Load(); doc != nil {
		var r *report.Report
		if r, why = report.Parse(*doc); why == nil {
			rep = r
		}
	}
	if why != nil {
		rep.Warn("written by the emergency policy beside the boot sequence, with only the failure: %v", why)
	} else {
		rep.Warn("written by the emergency policy beside the boot sequence: the boot as it stood at the end of its last phase")
	}
	return rep
}

// policyAside reports whether the emergency policy was started beside the
// boot sequence (a goroutine's panic: panicked).
func (b *boot) policyAside() bool {
	g := b.guard()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aside
}

// writeFailure writes rep (failureReport's) for a boot that failed with
// err.
func (b *boot) writeFailure(rep *report.Report, err error) {
	rep.Failure = err.Error()
	b.reportWatchdog(rep)
	b.repMu.Lock()
	defer b.repMu.Unlock()
	b.repFailed = true
	if err := rep.Write(reportPath); err != nil {
		b.log.Warnf("%v", err)
	}
}

// saveReport writes b.rep, unless a failure's report was written.
func (b *boot) saveReport() error {
	b.repMu.Lock()
	defer b.repMu.Unlock()
	if b.repFailed {
		return nil
	}
	return b.rep.Write(reportPath)
}
