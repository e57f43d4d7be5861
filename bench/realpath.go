// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/keel-boot/keel/report"
)

// The real path (issue 14): keel's generic image and its host-only form
// booting a Debian systemd root from an A/B disk with verity, a persistent
// upper and a btrfs data partition (plain or inside LUKS2), against
// initramfs-tools booting the same tree from a plain ext4 partition.
const (
	// SystemdLine starts systemd's first message on the console
	// ("systemd[1]: systemd 252.39-1~deb12u2 running in system mode …"):
	// the exec of systemd, on the kernel's clock.
	SystemdLine = "systemd[1]: systemd "
	// MultiUserLine is what RealPathScript writes to /dev/kmsg once
	// multi-user.target is reached: the guest's own clock.
	MultiUserLine = "KEEL-BENCH: multi-user.target reached"
)

// RealPathScript runs once multi-user.target is reached: it stamps the
// moment on the kernel's clock, prints keel's boot.json, flushes the disks
// (the next boot is the steady state of this one) and powers off at once.
const RealPathScript = `#!/bin/sh
echo "<2>` + MultiUserLine + `" >/dev/kmsg
[ -r /run/keel/boot.json ] && echo "` + BootJSONPrefix + `$(tr -d '\n' </run/keel/boot.json)" >/dev/console
sync
echo "` + DoneLine + `" >/dev/console
systemctl poweroff --force --force
`

// RealPathScriptPath is where the root holds RealPathScript.
const RealPathScriptPath = "usr/local/sbin/keel-bench-done"

// RealPathUnit runs RealPathScript when multi-user.target is reached.
const RealPathUnit = `[Unit]
Description=keel bench: multi-user.target reached
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/` + RealPathScriptPath + `

[Install]
WantedBy=multi-user.target
`

// RealBoot is one boot of the real path: Boot with RootInit at systemd's
// first line, and when multi-user.target was reached.
type RealBoot struct {
	Boot
	MultiUser time.Duration // kernel clock at MultiUserLine
}

// ParseRealBoot reads a real-path boot's console: RunInitLine, SystemdLine
// and MultiUserLine must all be there with kernel timestamps, in order.
func ParseRealBoot(console string) (RealBoot, error) {
	var rb RealBoot
	var ok bool
	if rb.RunInit, ok = KernelTime(console, RunInitLine); !ok {
		return RealBoot{}, fmt.Errorf("console: no %q line with a kernel timestamp (is printk.time=1 on the command line?)", RunInitLine)
	}
	if rb.RootInit, ok = KernelTime(console, SystemdLine); !ok {
		return RealBoot{}, fmt.Errorf("console: no %q line with a kernel timestamp: systemd did not start", SystemdLine)
	}
	if rb.MultiUser, ok = KernelTime(console, MultiUserLine); !ok {
		return RealBoot{}, fmt.Errorf("console: no %q line with a kernel timestamp: multi-user.target was not reached", MultiUserLine)
	}
	if rb.RootInit < rb.RunInit || rb.MultiUser < rb.RootInit {
		return RealBoot{}, fmt.Errorf("console: Run /init at %v, systemd at %v, multi-user.target at %v: expected them in that order", rb.RunInit, rb.RootInit, rb.MultiUser)
	}
	rb.KeelStart, _ = KernelTime(console, keelStartLine)
	rb.KeelSwitch, _ = KernelTime(console, keelSwitchLine)
	r, err := parseBootJSON(console)
	if err != nil {
		return RealBoot{}, err
	}
	rb.Report = r
	return rb, nil
}

// RealCase is what one real-path boot must show, so that a boot that went
// another way (volatile, another slot, no seeding) is no figure.
type RealCase struct {
	Keel      bool // keel's boot (else the peer's: no boot.json)
	Encrypted bool // the data partition is LUKS2
	First     bool // the first boot: /var seeded, a fresh upper
}

// Check says why b is not a boot of this case, or nil.
func (c RealCase) Check(b RealBoot) error {
	r := b.Report
	switch {
	case !c.Keel && r != nil:
		return fmt.Errorf("a peer's boot printed a keel boot.json")
	case !c.Keel:
		return nil
	case r == nil:
		return fmt.Errorf("no boot.json printed by the root")
	case r.Mode != "slot" || r.Slot != "a" || !r.Authenticated || r.Overlay != "persistent":
		return fmt.Errorf("boot.json mode %q slot %q authenticated %v overlay %q: want slot a, authenticated, persistent overlay", r.Mode, r.Slot, r.Authenticated, r.Overlay)
	}
	return c.checkData(r.Data)
}

func (c RealCase) checkData(d *report.Data) error {
	switch {
	case d == nil:
		return fmt.Errorf("boot.json has no data partition")
	case d.Volatile || d.FSType != "btrfs":
		return fmt.Errorf("boot.json data: volatile %v, fstype %q: want btrfs in use", d.Volatile, d.FSType)
	case d.Encrypted != c.Encrypted:
		return fmt.Errorf("boot.json data: encrypted %v, want %v", d.Encrypted, c.Encrypted)
	case d.Seeded != c.First || d.FreshUpper != c.First:
		return fmt.Errorf("boot.json data: seeded %v, fresh upper %v: want %v for a first boot %v", d.Seeded, d.FreshUpper, c.First, c.First)
	}
	return nil
}

// RealRow is one image and disk of the real path, over its boots.
type RealRow struct {
	Name, Form string
	Size       int64
	// ToExec is Run /init to keel's "switching root" line, when keel execs
	// systemd (keel's rows only: the figure of issue 14's targets);
	// InInitramfs is Run /init to systemd's first line, which includes
	// systemd's own start and is there for every image; MultiUser the
	// kernel clock at multi-user.target; FromInit that minus Run /init.
	ToExec, InInitramfs, MultiUser, FromInit Summary
	Breakdown                                Breakdown // keel's rows only
}

// SummarizeReal turns boots into a row; the breakdown is kept for keel's.
func SummarizeReal(name, form string, size int64, boots []RealBoot) RealRow {
	var exec, in, mu, from []time.Duration
	plain := make([]Boot, 0, len(boots))
	keel := false
	for _, b := range boots {
		in, mu, from = append(in, b.InInitramfs()), append(mu, b.MultiUser), append(from, b.MultiUser-b.RunInit)
		if b.KeelSwitch > 0 {
			exec = append(exec, b.KeelSwitch-b.RunInit)
		}
		plain = append(plain, b.Boot)
		keel = keel || b.Report != nil
	}
	row := RealRow{Name: name, Form: form, Size: size, ToExec: Summarize(exec), InInitramfs: Summarize(in), MultiUser: Summarize(mu), FromInit: Summarize(from)}
	if keel {
		row.Breakdown = KeelBreakdown(name, plain)
	}
	return row
}

// Limits of issue 14, medians under TCG.
const (
	realSteadyLimit   = 1200 * time.Millisecond
	realFirstLimit    = 2500 * time.Millisecond
	genericSizeLimit  = 4 << 20
	realSteadySuffix  = "steady state"
	realFirstSuffix   = "first boot"
	realGenericPrefix = "keel generic, btrfs"
)

// findReal returns the row named name, or the zero row.
func (r Results) findReal(name string) RealRow {
	for _, row := range r.RealPath {
		if row.Name == name {
			return row
		}
	}
	return RealRow{}
}

// RealTargets checks the run against issue 14's targets.
func (r Results) RealTargets() []Target {
	steady := r.findReal(realGenericPrefix + ", " + realSteadySuffix).ToExec
	first := r.findReal(realGenericPrefix + ", " + realFirstSuffix).ToExec
	var tiny Summary
	for _, p := range r.Peers {
		if p.Name == "tiny-initramfs" {
			tiny = p.Boot
		}
	}
	small := r.KeelSmall.Boot
	return []Target{
		{"real path, steady state (generic image, verity + persistent btrfs + A/B + systemd), Run /init → exec of systemd", "≤ 1.2 s", Seconds(steady.Median),
			steady.N > 0 && steady.Median <= realSteadyLimit},
		{"real path, first boot incl. /var seeding, Run /init → exec of systemd", "≤ 2.5 s", Seconds(first.Median),
			first.N > 0 && first.Median <= realFirstLimit},
		{"plain ext4 root vs tiny-initramfs, same run", "≤ ×1.00", Ratio(small.Median.Seconds(), tiny.Median.Seconds()),
			small.N > 0 && tiny.N > 0 && small.Median <= tiny.Median},
		{"generic default image (booted above)", "≤ 4 MiB", fmt.Sprintf("%.2f MiB", float64(r.Generic.Size)/(1<<20)),
			r.Generic.Size > 0 && r.Generic.Size <= genericSizeLimit},
	}
}

// realMarkdown renders the real-path tables: one row per image and boot
// kind, issue 14's targets, and keel's breakdowns.
func (r Results) realMarkdown(b *strings.Builder) {
	if len(r.RealPath) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### The real path: Debian with systemd (issue 14)\n\n%d boots of each; medians (min–max), all on the guest's kernel clock. \"Exec of systemd\" is `Run /init` to keel's `switching root` line; \"systemd's first line\" is `Run /init` to systemd's banner, which adds systemd's own start (for every image); multi-user.target is when the target is reached (from power-on, and from `Run /init`).\n\n", r.RealRuns)
	b.WriteString("| image, disk, boot | form | image size | `Run /init` → exec of systemd | `Run /init` → systemd's first line | multi-user.target | multi-user.target after `Run /init` |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, row := range r.RealPath {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", row.Name, row.Form, MB(row.Size), row.ToExec.Spread(), row.InInitramfs.Spread(), row.MultiUser.Spread(), row.FromInit.Spread())
	}
	b.WriteString("\n#### Targets (issue 14)\n\n| target | goal | measured | |\n| --- | --- | --- | --- |\n")
	for _, t := range r.RealTargets() {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", t.What, t.Goal, t.Measured, t.Verdict())
	}
	for _, row := range r.RealPath {
		if len(row.Breakdown.Steps) > 0 {
			writeBreakdown(b, row.Breakdown)
		}
	}
}
