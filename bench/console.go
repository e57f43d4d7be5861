// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/keel-boot/keel/report"
)

// Console lines the measurements are read from.
const (
	// RunInitLine is what the kernel prints as it executes the initramfs's
	// /init (init/main.c: run_init_process).
	RunInitLine = "Run /init as init process"
	// MarkerLine is what the root's init writes to /dev/kmsg first thing,
	// so that it carries a kernel timestamp like RunInitLine.
	MarkerLine = "KEEL-BENCH: root init reached"
	// BootJSONPrefix starts the line with keel's /run/keel/boot.json.
	BootJSONPrefix = "KEEL-BENCH: boot.json: "
	// DoneLine is the root init's last line before it powers off.
	DoneLine = "KEEL-BENCH: done"
	// keel's own log lines around its work, for the breakdown.
	keelStartLine  = "keel: keel starting"
	keelSwitchLine = "keel: switching root"
)

// Boot is what one boot's console tells: kernel clock readings (time since
// the kernel started) and, for keel, its boot report.
type Boot struct {
	RunInit  time.Duration // the kernel runs the initramfs's /init
	RootInit time.Duration // the root's init has started
	// KeelStart and KeelSwitch are keel's first log line and its
	// "switching root" line; zero for the peers.
	KeelStart, KeelSwitch time.Duration
	Report                *report.Report // keel's boot.json; nil for the peers
}

// InInitramfs is the figure the tables compare: from the kernel handing
// over to the initramfs to the root's init running.
func (b Boot) InInitramfs() time.Duration { return b.RootInit - b.RunInit }

var bootJSONRE = regexp.MustCompile(`(?m)` + regexp.QuoteMeta(BootJSONPrefix) + `(\{.*\})\s*$`)

// ParseBoot reads a boot's console output. RunInitLine and MarkerLine must
// both be there with kernel timestamps (printk.time=1), in that order.
func ParseBoot(console string) (Boot, error) {
	var b Boot
	var ok bool
	if b.RunInit, ok = KernelTime(console, RunInitLine); !ok {
		return Boot{}, fmt.Errorf("console: no %q line with a kernel timestamp (is printk.time=1 on the command line?)", RunInitLine)
	}
	if b.RootInit, ok = KernelTime(console, MarkerLine); !ok {
		return Boot{}, fmt.Errorf("console: no %q line with a kernel timestamp: the root's init did not run or could not write /dev/kmsg", MarkerLine)
	}
	if b.RootInit < b.RunInit {
		return Boot{}, fmt.Errorf("console: root init at %v, before %q at %v: expected it after", b.RootInit, RunInitLine, b.RunInit)
	}
	b.KeelStart, _ = KernelTime(console, keelStartLine)
	b.KeelSwitch, _ = KernelTime(console, keelSwitchLine)
	r, err := parseBootJSON(console)
	if err != nil {
		return Boot{}, err
	}
	b.Report = r
	return b, nil
}

// parseBootJSON reads keel's boot.json from its console line; nil when
// there is none (a peer's boot).
func parseBootJSON(console string) (*report.Report, error) {
	m := bootJSONRE.FindStringSubmatch(console)
	if m == nil {
		return nil, nil
	}
	var r report.Report
	if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
		return nil, fmt.Errorf("console: boot.json line: %w", err)
	}
	return &r, nil
}

var stampRE = regexp.MustCompile(`\[\s*(\d{1,7})\.(\d{6})\] `)

// KernelTime returns the kernel timestamp of the first console line whose
// message starts with msg: "[    2.227100] Run /init as init process".
func KernelTime(console, msg string) (time.Duration, bool) {
	re := regexp.MustCompile(stampRE.String() + regexp.QuoteMeta(msg))
	m := re.FindStringSubmatch(console)
	if m == nil {
		return 0, false
	}
	sec, err1 := strconv.ParseInt(m[1], 10, 64)
	usec, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond, true
}
