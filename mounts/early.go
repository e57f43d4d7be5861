// SPDX-License-Identifier: Apache-2.0

package mounts

import "golang.org/x/sys/unix"

// Early are the API filesystems the init mounts before anything else.
func Early() []Mount {
	const nsx = unix.MS_NOSUID | unix.MS_NOEXEC
	return []Mount{
		{Source: "proc", Target: "/proc", FSType: "proc", Flags: nsx | unix.MS_NODEV},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nsx | unix.MS_NODEV},
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
		{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
	}
}
