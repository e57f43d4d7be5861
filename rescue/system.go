// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/kmod"
)

func systemBuiltins() map[string]builtin {
	return map[string]builtin{
		"blkid":    {run: lsblk, usage: "blkid: same as lsblk"},
		"dmesg":    {run: dmesg, usage: "dmesg: print the kernel log"},
		"lsblk":    {run: lsblk, usage: "lsblk: block devices with size, file system, label, UUID and partition name"},
		"lsmod":    {run: lsmod, usage: "lsmod: loaded kernel modules"},
		"modprobe": {run: modprobe, usage: "modprobe MODULE…: load modules of this initramfs with their dependencies"},
		"mount":    {run: mount, usage: "mount [-r] [-t TYPE] [-o OPTS] SOURCE DIR: mount (TYPE probed; no arguments: list mounts)"},
		"umount":   {run: umount, usage: "umount [-l] DIR…: unmount (-l: lazily)"},
	}
}

// mountOptions are the options mount turns into flags; the rest go to the
// file system as data.
var mountOptions = map[string]struct {
	set   bool
	flags uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"noatime": {true, unix.MS_NOATIME}, "relatime": {true, unix.MS_RELATIME},
	"sync": {true, unix.MS_SYNCHRONOUS}, "remount": {true, unix.MS_REMOUNT},
	"bind": {true, unix.MS_BIND}, "rbind": {true, unix.MS_BIND | unix.MS_REC},
	"move": {true, unix.MS_MOVE},
}

// parseMountOptions splits -o's list into flags and file-system data.
func parseMountOptions(opts string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts, ",") {
		if o == "" || o == "defaults" {
			continue
		}
		if m, ok := mountOptions[o]; ok {
			if m.set {
				flags |= m.flags
			} else {
				flags &^= m.flags
			}
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

func mount(s *Shell, args []string, sio stdio) int {
	var fstype, opts string
	var flags uintptr
	var rest []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "-t" || a == "-o") && i+1 < len(args):
			if a == "-t" {
				fstype = args[i+1]
			} else {
				opts = joinOpts(opts, args[i+1])
			}
			i++
		case a == "-r":
			opts = joinOpts(opts, "ro")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			return fail(sio, "mount", "unknown option %s (usage: mount [-r] [-t TYPE] [-o OPTS] SOURCE DIR)", a)
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return cat(s, []string{"cat", "/proc/mounts"}, sio)
	}
	if len(rest) != 2 {
		return fail(sio, "mount", "expected SOURCE DIR")
	}
	flags, data := parseMountOptions(opts)
	src, dir := rest[0], rest[1]
	if fstype == "" && flags&(unix.MS_BIND|unix.MS_MOVE|unix.MS_REMOUNT) == 0 {
		fs, err := probe(sio.ctx, src)
		var pe *os.PathError
		if errors.As(err, &pe) && !errors.Is(err, errInterrupted) {
			return fail(sio, "mount", "%v (-t TYPE for a file system without a device)", err)
		}
		if err != nil {
			return fail(sio, "mount", "%s: %v; name it with -t TYPE", src, err)
		}
		fstype = fs.Type
	}
	if fstype == "crypto_LUKS" {
		return fail(sio, "mount", "%s is a LUKS container, not a file system", src)
	}
	if fstype != "" {
		_ = s.loadModules(sio, fstype) // built into the kernel, or mount says why not
	}
	if err := unix.Mount(src, dir, fstype, flags, data); err != nil {
		return fail(sio, "mount", "%s on %s (type %q, options %q): %v", src, dir, fstype, opts, err)
	}
	return 0
}

func joinOpts(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func umount(s *Shell, args []string, sio stdio) int {
	opt, dirs, err := flags(args, "l")
	if err != nil || len(dirs) == 0 {
		if err == nil {
			err = fmt.Errorf("expected DIR")
		}
		return fail(sio, "umount", "%v", err)
	}
	fl := 0
	if opt['l'] {
		fl = unix.MNT_DETACH
	}
	rc := 0
	for _, d := range dirs {
		if err := unix.Unmount(d, fl); err != nil {
			rc = fail(sio, "umount", "%s: %v", d, err)
		}
	}
	return rc
}

func dmesg(s *Shell, args []string, sio stdio) int {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		n = 1 << 20
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return fail(sio, "dmesg", "%v", err)
	}
	w := bufio.NewWriter(sio.out)
	for _, line := range strings.SplitAfter(string(buf[:n]), "\n") {
		// Drop the "<level>" prefix, as dmesg does.
		if strings.HasPrefix(line, "<") {
			if i := strings.IndexByte(line, '>'); i > 0 && i < 5 {
				line = line[i+1:]
			}
		}
		w.WriteString(line)
	}
	if err := w.Flush(); err != nil {
		return fail(sio, "dmesg", "%v", err)
	}
	return 0
}

// blockDev is one row of lsblk.
type blockDev struct {
	name, kind, size, fstype, label, uuid, partname string
}

func lsblk(s *Shell, args []string, sio stdio) int {
	devs, err := devices.ScanBlock(filepath.Join(s.Root, "/sys"))
	if len(devs) == 0 && err != nil {
		return fail(sio, args[0], "%v", err)
	}
	var rows []blockDev
	for _, d := range devs {
		rows = append(rows, s.blockDevice(sio.ctx, d))
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	w := bufio.NewWriter(sio.out)
	fmt.Fprintf(w, "%-12s %-5s %9s %-12s %-16s %-36s %s\n", "NAME", "TYPE", "SIZE", "FSTYPE", "LABEL", "UUID", "PARTLABEL")
	for _, r := range rows {
		fmt.Fprintf(w, "%-12s %-5s %9s %-12s %-16s %-36s %s\n", r.name, r.kind, r.size, dash(r.fstype), dash(r.label), dash(r.uuid), dash(r.partname))
	}
	if err := w.Flush(); err != nil {
		return fail(sio, args[0], "%v", err)
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *Shell) blockDevice(ctx context.Context, b devices.SysBlock) blockDev {
	// A disk's strings are shown escaped: a stick could otherwise write
	// escape sequences to the root shell's terminal.
	d := blockDev{name: b.Name, kind: "disk", partname: devices.Shown(b.PartName)}
	switch {
	case b.IsPartition():
		d.kind = "part"
	case b.DMName != "":
		d.kind, d.name = "dm", b.Name+" ("+b.DMName+")"
	case strings.HasPrefix(b.Name, "loop"):
		d.kind = "loop"
	}
	if b.Sectors >= 0 {
		d.size = humanSize(b.Sectors * 512)
	}
	if fs, err := probe(ctx, filepath.Join(s.Root, "/dev", b.DevName)); err == nil {
		d.fstype, d.label, d.uuid = fs.Type, devices.Shown(fs.Label), devices.Shown(fs.UUID)
	}
	return d
}

// probe reads the file system on a device, Ctrl-C ending the wait of one
// that does not answer (a stalled USB stick).
func probe(ctx context.Context, dev string) (devices.FS, error) {
	f, err := openFile(ctx, dev, os.O_RDONLY, 0)
	if err != nil {
		return devices.FS{}, err
	}
	defer f.Close()
	return devices.Probe(newStream(ctx, f))
}

func humanSize(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i:i+1]
}

// loadedModules reads /proc/modules: the modules that are live, and a line
// per module for lsmod. A module still "Loading" (the init may be loading
// it in the background when the shell starts) is not live: loading it again
// makes the kernel wait for the first load to end, where skipping it would
// mount before its file system is registered.
func (s *Shell) loadedModules() (map[string]bool, []string, error) {
	b, err := os.ReadFile(filepath.Join(s.Root, "/proc/modules"))
	if err != nil {
		return nil, nil, err
	}
	live := map[string]bool{}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		state := "Live"
		if len(f) >= 5 {
			state = f[4]
		}
		live[f[0]] = state == "Live"
		lines = append(lines, fmt.Sprintf("%-24s %8s  %s", f[0], f[1], state))
	}
	return live, lines, nil
}

func lsmod(s *Shell, args []string, sio stdio) int {
	_, lines, err := s.loadedModules()
	if err != nil {
		return fail(sio, "lsmod", "%v", err)
	}
	fmt.Fprintf(sio.out, "%-24s %8s  %s\n", "Module", "Size", "State")
	for _, l := range lines {
		fmt.Fprintln(sio.out, l)
	}
	return 0
}

func modprobe(s *Shell, args []string, sio stdio) int {
	if len(args) < 2 {
		return fail(sio, "modprobe", "expected MODULE…")
	}
	if err := s.loadModules(sio, args[1:]...); err != nil {
		return fail(sio, "modprobe", "%v", err)
	}
	return 0
}

// errNotInPlan names a module this initramfs does not have.
var errNotInPlan = errors.New("not in this initramfs (mkinitrd --modules adds it)")

// loadModules loads modules of the baked plan and their dependencies.
func (s *Shell) loadModules(sio stdio, names ...string) error {
	cfg, err := bakedconf.Load(filepath.Join(s.Root, bakedconf.Path))
	if err != nil {
		return err
	}
	loaded, _, err := s.loadedModules()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if len(kmod.Closure(cfg.Modules, n)) == 0 && !loaded[kmod.Normalize(n)] {
			errs = append(errs, fmt.Errorf("%s: %w", n, errNotInPlan))
		}
	}
	todo := kmod.Pending(kmod.Closure(cfg.Modules, names...), loaded)
	errs = append(errs, kmod.Load(todo, s.rootDir(), kmod.LoadFile)...)
	return errors.Join(errs...)
}

func (s *Shell) rootDir() string {
	if s.Root == "" {
		return "/"
	}
	return s.Root
}
