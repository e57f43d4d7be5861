// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"fmt"
	"strings"
)

// UtabPath is libmount's record of userspace mount options, merged with
// /proc/self/mountinfo by every libmount reader, systemd included.
const UtabPath = "/run/mount/utab"

// InitrdOption marks a mount as the initrd's: systemd (fstab_is_extrinsic)
// then never stops its mount unit at shutdown, and leaves it to
// systemd-shutdown and the initrd's shutdown program, after every process
// is gone. Without it systemd tries to unmount /var while journald still
// writes there and reports "Failed unmounting var.mount".
const InitrdOption = "x-initrd.mount"

// Utab renders utab lines giving InitrdOption to the mounts of ms whose
// mount point is a key of points, under the path the value names (the
// booted system's, after switch_root). libmount matches a line to a mount
// by source, target and root, so they are copied from ms; the topmost
// mount of a point is the one named.
func Utab(ms []MountInfo, points map[string]string) []byte {
	top := map[string]MountInfo{}
	var order []string
	for _, m := range ms {
		if _, ok := points[m.Point]; !ok {
			continue
		}
		if _, seen := top[m.Point]; !seen {
			order = append(order, m.Point)
		}
		top[m.Point] = m
	}
	var b strings.Builder
	for _, p := range order {
		m := top[p]
		fmt.Fprintf(&b, "SRC=%s TARGET=%s ROOT=%s OPTS=%s\n", Escape(m.Source), Escape(points[p]), Escape(m.Root), InitrdOption)
	}
	return []byte(b.String())
}
