// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// ErrUdevMessage is returned by ParseUevent for messages re-broadcast by
// udevd ("libudev" header): the init listens to the kernel only.
var ErrUdevMessage = errors.New("uevent: udev message, not from the kernel")

// udevHeader starts the messages libudev sends on netlink group 2; a socket
// bound to group 1 should never see them, but a sender can try.
const udevHeader = "libudev\x00"

// Uevent is one kernel uevent: "ACTION@DEVPATH\0KEY=VAL\0...".
type Uevent struct {
	Action    string // add, change, remove, ...
	DevPath   string // /devices/.../block/vda/vda1
	Subsystem string // block, ...
	DevName   string // vda1 (relative to /dev)
	DevType   string // disk or partition
	Major     uint32
	Minor     uint32
	PartName  string // GPT partition name as the kernel reports it (7-bit)
	PartN     int    // partition number, 1-based
	Env       map[string]string
}

// ParseUevent parses a kernel uevent datagram. It returns ErrUdevMessage for
// udev's messages and an error naming the problem for malformed ones.
func ParseUevent(b []byte) (Uevent, error) {
	if bytes.HasPrefix(b, []byte(udevHeader)) {
		return Uevent{}, ErrUdevMessage
	}
	fields := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	action, devpath, ok := strings.Cut(fields[0], "@")
	if !ok || action == "" || !strings.HasPrefix(devpath, "/") {
		return Uevent{}, fmt.Errorf("uevent: header %q: want ACTION@/DEVPATH", truncate(fields[0], 64))
	}
	ev := Uevent{Action: action, DevPath: devpath, Env: make(map[string]string, len(fields)-1)}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return Uevent{}, fmt.Errorf("uevent %s: field %q: want KEY=VALUE", devpath, truncate(f, 64))
		}
		ev.Env[k] = v
	}
	return ev, ev.fill()
}

// fill copies the well-known keys of Env into the typed fields.
func (ev *Uevent) fill() error {
	var err error
	ev.Subsystem = ev.Env["SUBSYSTEM"]
	ev.DevType = ev.Env["DEVTYPE"]
	ev.PartName = ev.Env["PARTNAME"]
	ev.DevName = ev.Env["DEVNAME"]
	if ev.DevName == "" && ev.Subsystem == "block" {
		// Block devices are named after their kobject; DEVNAME is only a
		// convenience the kernel adds when the node has a name.
		ev.DevName = path.Base(ev.DevPath)
	}
	if ev.DevName != "" && !validDevName(ev.DevName) {
		// The name becomes a path under /dev, and maybe a mknod there.
		return fmt.Errorf("uevent %s: DEVNAME=%q: want a name under /dev", ev.DevPath, ev.DevName)
	}
	if ev.Major, err = envUint32(ev, "MAJOR"); err != nil {
		return err
	}
	if ev.Minor, err = envUint32(ev, "MINOR"); err != nil {
		return err
	}
	if s, ok := ev.Env["PARTN"]; ok {
		n, perr := strconv.ParseUint(s, 10, 31)
		if perr != nil {
			return fmt.Errorf("uevent %s: PARTN=%q: want a partition number: %w", ev.DevPath, s, perr)
		}
		ev.PartN = int(n)
	}
	return nil
}

func envUint32(ev *Uevent, key string) (uint32, error) {
	s, ok := ev.Env[key]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("uevent %s: %s=%q: want a device number: %w", ev.DevPath, key, s, err)
	}
	return uint32(n), nil
}

// Parent returns the kernel name of the disk a partition belongs to, taken
// from DEVPATH (.../block/nvme0n1/nvme0n1p1), or "" for anything else.
func (ev Uevent) Parent() string {
	if ev.DevType != "partition" {
		return ""
	}
	dir := path.Dir(ev.DevPath)
	if dir == "/" || dir == "." {
		return ""
	}
	return path.Base(dir)
}

func validDevName(n string) bool {
	return !path.IsAbs(n) && path.Clean(n) == n && n != "." && n != ".." && !strings.HasPrefix(n, "../")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ModuleAdded returns the name of the module an "add" uevent of the module
// subsystem announces (DEVPATH=/module/NAME): the kernel sends it when the
// module's init has returned, before finit_module(2) waits for the
// asynchronous work the init started. Names are given with underscores, as
// the kernel and the baked plan spell them.
func ModuleAdded(ev Uevent) (string, bool) {
	if ev.Subsystem != "module" || ev.Action != "add" || path.Dir(ev.DevPath) != "/module" {
		return "", false
	}
	name := path.Base(ev.DevPath)
	if name == "" || name == "." || name == "/" {
		return "", false
	}
	return strings.ReplaceAll(name, "-", "_"), true
}
