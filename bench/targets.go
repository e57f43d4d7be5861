// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"time"
)

// Target is one of issue 5's goals and what this run measured.
type Target struct {
	What, Goal, Measured string
	Met                  bool
}

// Verdict is "met" or "missed".
func (t Target) Verdict() string {
	if t.Met {
		return "met"
	}
	return "missed"
}

// Limits from the issue. Image sizes are in MiB, the init binary in MB
// (10^6 bytes), as the issue writes them.
const (
	plainBootLimit = 1000 * time.Millisecond
	fullBootLimit  = 1500 * time.Millisecond
	mkinitrdLimit  = 200 * time.Millisecond
	plainSizeLimit = 2 << 20
	demoSizeLimit  = 4 << 20
	initSizeLimit  = 3_000_000
	etcMergeLimit  = 300 * time.Millisecond
)

// Targets checks the run against the targets.
func (r Results) Targets() []Target {
	mib := func(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
	return []Target{
		{"plain ext4 root, time in the initramfs", "≤ 1.0 s", Seconds(r.KeelSmall.Boot.Median),
			r.KeelSmall.Boot.N > 0 && r.KeelSmall.Boot.Median <= plainBootLimit},
		{"verity + overlay + A/B, time in the initramfs", "≤ 1.5 s", Seconds(r.KeelFull.Boot.Median),
			r.KeelFull.Boot.N > 0 && r.KeelFull.Boot.Median <= fullBootLimit},
		{"mkinitrd wall time (small image)", "≤ 0.2 s", Seconds(r.KeelSmall.Gen.Median),
			r.KeelSmall.Gen.N > 0 && r.KeelSmall.Gen.Median <= mkinitrdLimit},
		{"plain-ext4 image (virtio + ext4 + shell)", "≤ 2 MiB", mib(r.KeelSmall.Size),
			r.KeelSmall.Size > 0 && r.KeelSmall.Size <= plainSizeLimit},
		{"demo image (virtio, squashfs, overlay, dm-verity, btrfs, shell)", "≤ 4 MiB", mib(r.KeelFull.Size),
			r.KeelFull.Size > 0 && r.KeelFull.Size <= demoSizeLimit},
		{"init binary, stripped", "≤ 3 MB", MB(r.InitSize),
			r.InitSize > 0 && r.InitSize <= initSizeLimit},
		{"/etc merge of a realistic update, in the guest, btrfs data partition (the default: in place in a snapshot; issue 11)", "≤ 0.3 s", Seconds(r.EtcMergeInPlaceTCG.Median),
			r.EtcMergeInPlaceTCG.N > 0 && r.EtcMergeInPlaceTCG.Median <= etcMergeLimit},
		{"/etc merge of the same update, in the guest, ext4 data partition (copying; issue 11)", "≤ 0.3 s", Seconds(r.EtcMergeTCG.Median),
			r.EtcMergeTCG.N > 0 && r.EtcMergeTCG.Median <= etcMergeLimit},
		{"hash-tree build vs veritysetup format", "≥ ×1.00", Ratio(r.Verity.Keel, r.Verity.Veritysetup),
			r.Verity.Veritysetup > 0 && r.Verity.Keel >= r.Verity.Veritysetup},
	}
}
