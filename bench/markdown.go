// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The generated part of BENCHMARKS.md lies between these lines; the
// analysis written by hand around it survives every run.
const (
	beginMarker = "<!-- make bench: begin (generated, do not edit) -->"
	endMarker   = "<!-- make bench: end -->"
)

// Markdown renders the results as the generated part of BENCHMARKS.md.
func (r Results) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Measured by `make bench` on %s: %s, %d cores, host kernel %s, load average %s at the start; guest kernel %s in %s (`%s`); %d boots and %d generations per image.\n\n",
		r.Date.UTC().Format("2006-01-02 15:04 UTC"), m.CPU, m.Cores, m.HostKernel, m.Load, m.GuestKernel, m.QEMU, m.Accel, r.Runs, r.GenRuns)
	b.WriteString("| image | form | generation (median) | image size | in the initramfs: median (min–max) | kernel reaches `Run /init` |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, row := range r.Rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", row.Name, row.Form, Seconds(row.Gen.Median), MB(row.Size), row.Boot.Spread(), Seconds(row.RunInit.Median))
	}
	fmt.Fprintf(&b, "| %s | %s | %s | %s | booted in the real path, below | |\n\n", r.Generic.Name, r.Generic.Form, Seconds(r.Generic.Gen.Median), MB(r.Generic.Size))
	b.WriteString("keel's figure divided by the peer's (×0.50: half the peer's time or size):\n\n")
	b.WriteString("| keel ÷ | in the initramfs | full path in the initramfs | image size | demo image size | generation |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, c := range r.Compare() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.Peer, c.Boot, c.FullBoot, c.Size, c.FullSize, c.Gen)
	}
	b.WriteString("\n### Targets (issue 5)\n\n| target | goal | measured | |\n| --- | --- | --- | --- |\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.What, t.Goal, t.Measured, t.Verdict())
	}
	fmt.Fprintf(&b, "\nkeel's init binary, stripped: %s. Hash-tree build over the same 256 MiB file: keel `verity.Format` %.0f MB/s, `veritysetup format` %.0f MB/s.\n",
		MB(r.InitSize), r.Verity.Keel, r.Verity.Veritysetup)
	fmt.Fprintf(&b, "\nOne `/etc` merge (etcmerge `BenchmarkMerge`: 360 local changes, 20 users added, 50 conflicts), on the host: %s; in the guest (%s), median (min–max) of %d runs: on btrfs on a virtio disk (the default data file system), in place in a snapshot of the old upper (`BenchmarkMergeInPlace`, the snapshot included) %s, copying (`BenchmarkMerge`) %s; on ext4, copying %s, writing the same files and nothing else (`BenchmarkWriteFloor`) %s. The boot report's `etc_merge.ms` of `TestEtcMergeSystemdBtrfs` and `TestEtcMergeSystemd` measures a real boot's merge, base open and flush included.\n",
		Seconds(r.EtcMerge), m.Accel, r.EtcMergeTCG.N, r.EtcMergeInPlaceTCG.Spread(), r.EtcMergeBtrfsTCG.Spread(), r.EtcMergeTCG.Spread(), r.EtcWriteFloorTCG.Spread())
	b.WriteString(r.Unlock.Markdown())
	b.WriteString(r.Install.Markdown())
	for _, bd := range r.Breakdowns {
		writeBreakdown(&b, bd)
	}
	r.realMarkdown(&b)
	return b.String()
}

// writeBreakdown renders where one image's time in the initramfs goes.
func writeBreakdown(b *strings.Builder, bd Breakdown) {
	fmt.Fprintf(b, "\n### Where the time goes: %s\n\n| step | median | min–max |\n| --- | --- | --- |\n", bd.Image)
	for _, s := range bd.Steps {
		fmt.Fprintf(b, "| %s | %s | %.3f–%.3f s |\n", s.Name, fmt.Sprintf("%.3f s", s.Time.Median.Seconds()), s.Time.Min.Seconds(), s.Time.Max.Seconds())
	}
}

// UpdateFile puts generated between the markers of the file at path,
// keeping what is around them. A missing file is created with a title; a
// file without the markers is an error, not overwritten.
func UpdateFile(path, generated string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old = []byte("# keel benchmarks\n\n" + beginMarker + "\n" + endMarker + "\n")
	} else if err != nil {
		return fmt.Errorf("benchmarks file: %w", err)
	}
	i := bytes.Index(old, []byte(beginMarker))
	j := bytes.Index(old, []byte(endMarker))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q line followed by %q: expected them around the generated tables", path, beginMarker, endMarker)
	}
	var b bytes.Buffer
	b.Write(old[:i+len(beginMarker)])
	b.WriteString("\n" + strings.TrimSpace(generated) + "\n")
	b.Write(old[j:])
	return os.WriteFile(path, b.Bytes(), 0o644)
}
