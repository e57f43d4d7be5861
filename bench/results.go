// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Row is one initramfs in the comparison.
type Row struct {
	Name    string
	Form    string  // how it was built, for the reader
	Image   string  // the image file
	Gen     Summary // generation wall time
	Size    int64   // image size in bytes
	Boot    Summary // time in the initramfs: Run /init to the root's init
	RunInit Summary // kernel clock at Run /init: mostly unpacking the image
}

// Throughput compares hash-tree builders on the same file, in MB/s.
type Throughput struct{ Keel, Veritysetup float64 }

// Results is everything one `make bench` run measured.
type Results struct {
	KeelSmall Row // plain ext4 root, VMModules
	KeelFull  Row // A/B + verity + overlay on the SquashFS of the same root
	Peers     []Row
	Generic   Row   // keel's generic default image: generation and size only
	InitSize  int64 // the stripped keel init
	Verity    Throughput
	// EtcMerge is one /etc merge of etcmerge's BenchmarkMerge (360 local
	// changes, 20 users added, 50 conflicts) on the host.
	EtcMerge time.Duration
	// EtcMergeTCG is the same merge in the test kernel under QEMU, on ext4
	// on a virtio disk: the median of etcMergeTCGRuns runs. ext4 data
	// partitions and uppers made before subvolume uppers get this copying
	// merge (docs/data.md).
	EtcMergeTCG Summary
	// EtcWriteFloorTCG is, in the same guest, writing the files that
	// merge writes and nothing else (etcmerge's BenchmarkWriteFloor).
	EtcWriteFloorTCG Summary
	// EtcMergeInPlaceTCG is the merge a btrfs data partition (the
	// default) gets: in place in a snapshot of the old upper, snapshot
	// included (etcmerge's BenchmarkMergeInPlace), in a guest whose trees
	// are on btrfs; EtcMergeBtrfsTCG is the copying merge in that guest.
	EtcMergeInPlaceTCG, EtcMergeBtrfsTCG Summary
	Unlock                               UnlockBench  // keel's LUKS2 unlock vs cryptsetup, on the host
	Install                              InstallBench // slotctl install vs dd + veritysetup, on the host
	// Breakdowns are where keel's time in the initramfs goes, from its
	// console lines and boot.json.
	Breakdowns []Breakdown
	// RealPath is the real path of issue 14 (realpath.go), RealRuns boots
	// of each row.
	RealPath []RealRow
	RealRuns int
	Machine  Machine
	Runs     int // boots per image
	GenRuns  int // generations per image
	Date     time.Time
}

// Rows returns keel's rows first, then the peers.
func (r Results) Rows() []Row { return append([]Row{r.KeelSmall, r.KeelFull}, r.Peers...) }

// Comparison is keel set against one peer: keel's figure divided by the
// peer's, so ×0.25 means keel takes a quarter of the peer's time or size.
type Comparison struct {
	Peer                  string
	Boot, FullBoot        string // keel small, keel full path vs the peer's boot
	Size, FullSize, Gen   string
	BootFactor, GenFactor float64 // peer ÷ keel small, for the summary line
}

// Compare computes the ratios against each peer.
func (r Results) Compare() []Comparison {
	var cs []Comparison
	for _, p := range r.Peers {
		k, f := r.KeelSmall, r.KeelFull
		cs = append(cs, Comparison{
			Peer:       p.Name,
			Boot:       Ratio(k.Boot.Median.Seconds(), p.Boot.Median.Seconds()),
			FullBoot:   Ratio(f.Boot.Median.Seconds(), p.Boot.Median.Seconds()),
			Size:       Ratio(float64(k.Size), float64(p.Size)),
			FullSize:   Ratio(float64(f.Size), float64(p.Size)),
			Gen:        Ratio(k.Gen.Median.Seconds(), p.Gen.Median.Seconds()),
			BootFactor: safeDiv(p.Boot.Median.Seconds(), k.Boot.Median.Seconds()),
			GenFactor:  safeDiv(p.Gen.Median.Seconds(), k.Gen.Median.Seconds()),
		})
	}
	return cs
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteText prints the tables for the terminal.
func (r Results) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "%s, %d cores, load average %s at the start; guest %s, %s\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.Load, r.Machine.GuestKernel, r.Machine.Accel)
	fmt.Fprintf(tw, "image\tgeneration (median of %d)\tsize\tin initramfs (median of %d, min–max)\tRun /init at\n", r.GenRuns, r.Runs)
	for _, row := range r.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Name, Seconds(row.Gen.Median), MB(row.Size), row.Boot.Spread(), Seconds(row.RunInit.Median))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t(real path, below)\t\n", r.Generic.Name, Seconds(r.Generic.Gen.Median), MB(r.Generic.Size))
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "keel ÷ peer\tin initramfs\tfull path\timage size\tdemo image size\tgeneration\n")
	for _, c := range r.Compare() {
		fmt.Fprintf(tw, "vs %s\t%s\t%s\t%s\t%s\t%s\n", c.Peer, c.Boot, c.FullBoot, c.Size, c.FullSize, c.Gen)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "keel init (stripped)\t%s\n", MB(r.InitSize))
	fmt.Fprintf(tw, "hash tree, 256 MiB\tkeel %.0f MB/s\tveritysetup %.0f MB/s\n", r.Verity.Keel, r.Verity.Veritysetup)
	fmt.Fprintf(tw, "/etc merge\thost %s\tguest, ext4 %s\tits writes alone %s\n", Seconds(r.EtcMerge), r.EtcMergeTCG.Spread(), r.EtcWriteFloorTCG.Spread())
	fmt.Fprintf(tw, "/etc merge, btrfs\tin place %s\tcopying %s\t\n", r.EtcMergeInPlaceTCG.Spread(), r.EtcMergeBtrfsTCG.Spread())
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "target\tgoal\tmeasured\t\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.What, t.Goal, t.Measured, t.Verdict())
	}
	if len(r.RealPath) > 0 {
		fmt.Fprintf(tw, "\nreal path (median of %d)\tto exec of systemd\tto systemd's first line\tmulti-user.target\tafter Run /init\n", r.RealRuns)
		for _, row := range r.RealPath {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Name, row.ToExec.Spread(), row.InInitramfs.Spread(), row.MultiUser.Spread(), row.FromInit.Spread())
		}
		for _, t := range r.RealTargets() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.What, t.Goal, t.Measured, t.Verdict())
		}
	}
	return tw.Flush()
}

// Step is one part of keel's time in the initramfs.
type Step struct {
	Name string
	Time Summary
}

// Breakdown is where one keel image's time in the initramfs goes.
type Breakdown struct {
	Image string
	Steps []Step
}

// KeelBreakdown turns keel's boots into steps: Go's start-up until keel's
// first log line, each phase of boot.json (medians over the boots), and
// switch_root until the root's init runs. Phases overlap the first step
// where keel logs after they begin (early-mounts).
func KeelBreakdown(image string, boots []Boot) Breakdown {
	var start, tail []time.Duration
	phases := map[string][]time.Duration{}
	var order []string
	for _, b := range boots {
		if b.KeelStart > 0 {
			start = append(start, b.KeelStart-b.RunInit)
		}
		if b.KeelSwitch > 0 {
			tail = append(tail, b.RootInit-b.KeelSwitch)
		}
		if b.Report == nil {
			continue
		}
		for _, p := range b.Report.Phases {
			if !slices.Contains(order, p.Name) {
				order = append(order, p.Name)
			}
			phases[p.Name] = append(phases[p.Name], time.Duration(p.Ms*float64(time.Millisecond)))
		}
	}
	bd := Breakdown{Image: image}
	bd.Steps = append(bd.Steps, Step{"Run /init → keel's first log line (Go start-up, early mounts)", Summarize(start)})
	for _, name := range order {
		bd.Steps = append(bd.Steps, Step{"phase " + name + " (boot.json)", Summarize(phases[name])})
	}
	bd.Steps = append(bd.Steps, Step{"switch_root → the root's init runs", Summarize(tail)})
	return bd
}
