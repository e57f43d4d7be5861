// SPDX-License-Identifier: Apache-2.0

package main

import "github.com/keel-boot/keel/report"

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
	if err := b.rep.Write(report.Path); err != nil {
		// The report is for monitoring; its loss must not stop the boot.
		b.log.Warnf("%v", err)
	}
	return nil
}
