// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unicode"
	"unsafe"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/shutdown"
)

// The initrd shutdown interface (docs/boot-sequence.md, "Shutdown"): the
// init leaves itself in /run/initramfs as shutdown, with a record of what
// it set up; systemd-shutdown pivots there at power-off and executes it.
const (
	shutdownDir  = "/run/initramfs"
	shutdownProg = shutdownDir + "/shutdown"
)

// stageShutdown starts copying the init binary to /run/initramfs in the
// background, as soon as /run is mounted and the module loads are under
// way: the 3.6 MB copy then overlaps the wait for devices instead of
// delaying switch_root (docs/boot-sequence.md, "Shutdown"). The copy
// lands under a temporary name; prepareShutdown waits for it and renames
// it once the undo record is written.
func (b *boot) stageShutdown() {
	done := make(chan struct{})
	c := &stagedCopy{done: done}
	b.shutdownCopy = c
	b.goSafeThen("the copy of the shutdown program", func() {
		c.size, c.err = stageShutdownBinary(shutdownDir)
	}, func() { close(done) })
}

// stagedCopy is the background copy of the init binary: size and err are
// set before done is closed.
type stagedCopy struct {
	done chan struct{}
	size int64
	err  error
}

// prepareShutdown fills /run/initramfs before switch_root: the init binary
// (the only program the shutdown needs, copied since stageShutdown), the
// directories systemd-shutdown's pivot binds into, and the undo record;
// and it marks keel's mounts as the initrd's in libmount's utab. A failure
// costs the clean shutdown, not the boot.
func (b *boot) prepareShutdown() {
	ms := b.keelMounts()
	if b.shutdownCopy == nil { // never staged (run stages it after devices)
		b.stageShutdown()
	}
	<-b.shutdownCopy.done
	size, err := b.shutdownCopy.size, b.shutdownCopy.err
	if err == nil {
		err = finishShutdownRoot(shutdownDir, b.undoState(ms))
	}
	if err == nil {
		err = b.markInitrdMounts(ms)
	}
	if err != nil {
		b.log.Warnf("shutdown: %v: at power-off keel's file systems will only be remounted read-only", err)
		b.parkIfFailed() // the emergency policy writes the report now
		// The report is written already: write it again with the warning.
		b.rep.Warn("shutdown: %v", err)
		if err := b.saveReport(); err != nil {
			b.log.Warnf("%v", err)
		}
		return
	}
	b.log.Infof("shutdown: %s ready (%d KiB kept in RAM until power-off)", shutdownProg, size>>10)
}

// markInitrdMounts writes /run/mount/utab so that systemd leaves keel's
// mounts to the shutdown program (shutdown.InitrdOption).
func (b *boot) markInitrdMounts(ms []mounts.Mount) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	table, err := shutdown.ParseMountinfo(info)
	if err != nil {
		b.log.Warnf("shutdown: %v (keel's own mounts are marked all the same)", err)
	}
	points := map[string]string{}
	for _, m := range ms {
		points[m.Target] = bootedPath(m.Target, b.newRoot)
	}
	if err := os.MkdirAll(filepath.Dir(shutdown.UtabPath), 0o755); err != nil {
		return err
	}
	return os.WriteFile(shutdown.UtabPath, shutdown.Utab(table, points), 0o644)
}

// writeShutdownRoot copies the running binary to dir/shutdown and writes
// the undo record; it returns the bytes the copy takes in the tmpfs.
func writeShutdownRoot(dir string, st shutdown.State) (int64, error) {
	n, err := stageShutdownBinary(dir)
	if err == nil {
		err = finishShutdownRoot(dir, st)
	}
	return n, err
}

// stageShutdownBinary makes the pivot's directories under dir and copies
// the running binary to dir/shutdown.tmp; it returns the bytes copied.
func stageShutdownBinary(dir string) (int64, error) {
	for _, d := range []string{"oldroot", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return 0, err
		}
	}
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("open the init binary: %w", err)
	}
	defer src.Close()
	tmp := filepath.Join(dir, "shutdown.tmp")
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	return n, nil
}

// finishShutdownRoot writes the undo record, then renames the staged copy
// to dir/shutdown: systemd-shutdown runs the program only when it exists,
// and then the record it reads is complete.
func finishShutdownRoot(dir string, st shutdown.State) error {
	prog, tmp := filepath.Join(dir, "shutdown"), filepath.Join(dir, "shutdown.tmp")
	err := os.WriteFile(filepath.Join(dir, filepath.Base(shutdown.StatePath)), st.Marshal(), 0o644)
	if err == nil {
		err = os.Rename(tmp, prog)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", prog, err)
	}
	return nil
}

// keelMounts are the mounts this boot made that stay in the booted system:
// the data partition, the image, the upper, the root and the binds (not
// the API file systems, which are moved).
func (b *boot) keelMounts() []mounts.Mount {
	var ms []mounts.Mount
	if b.data != nil {
		ms = b.data.stack.Mounts()
	}
	var out []mounts.Mount
	for _, m := range append(ms, b.stack.Mounts()...) {
		if !slices.Contains(mounts.APIFilesystems, m.Target) && m.Flags&(unix.MS_MOVE|unix.MS_REMOUNT) == 0 {
			out = append(out, m)
		}
	}
	return out
}

// undoState is what this boot set up, as the booted system will see it.
func (b *boot) undoState(ms []mounts.Mount) shutdown.State {
	var st shutdown.State
	if v := b.rep.Devices["verity"]; v != "" {
		st.DM = append(st.DM, filepath.Base(v))
	}
	if b.data != nil && b.rep.Data != nil && b.rep.Data.Encrypted {
		st.DM = append(st.DM, filepath.Base(b.rep.Data.Device))
	}
	for _, m := range ms {
		st.Mounts = append(st.Mounts, shutdown.Mounted{Role: mountRole(m, b.newRoot), Target: bootedPath(m.Target, b.newRoot), FSType: m.FSType, Source: m.Source})
	}
	return st
}

func mountRole(m mounts.Mount, newRoot string) string {
	l := mounts.DefaultLayout
	switch {
	case m.Target == newRoot:
		return "root"
	case m.Target == l.Lower:
		return "image"
	case m.Target == l.Upper:
		return "upper"
	case m.Target == datapart.DefaultRoot:
		return "data"
	case m.Flags&unix.MS_BIND != 0:
		return "bind"
	}
	return "mount"
}

// bootedPath turns a path under the new root into the booted system's.
func bootedPath(p, newRoot string) string {
	if newRoot != "" && shutdown.Under(p, newRoot) {
		return "/" + strings.TrimPrefix(strings.TrimPrefix(p, newRoot), "/")
	}
	return p
}

// shutdownMain is the init started as /run/initramfs/shutdown VERB by
// systemd-shutdown, as PID 1 after its pivot: undo, sync, perform the verb.
// As PID 1 it never returns.
func shutdownMain(args []string) int {
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "%s: keel's shutdown program runs as PID 1, executed by systemd-shutdown from /run/initramfs (it is PID %d)\n", args[0], os.Getpid())
		return 2
	}
	ignoreSignals() // a signal must not end PID 1 (signals.go)
	log := newLogger(os.Stderr)
	log.openKmsg()
	verb, err := shutdown.ParseVerb(args[1:])
	if err != nil {
		log.Errorf("shutdown: %v", err)
	}
	// Read before anything is unmounted: /run is the booted system's.
	param, err := rebootParam(rebootParamPaths...)
	if err != nil {
		log.Warnf("shutdown: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				log.Errorf("shutdown: internal error (panic): %v\n%s", r, debug.Stack())
			}
		}()
		undoBoot(log)
	}()
	performVerb(log, verb, param)
	return 0
}

// rebootParamPaths are where systemd leaves the argument of `systemctl
// reboot ARG` (/run/systemd/reboot-param), as this program sees them
// after systemd-shutdown's pivot: its /run, or the old root's.
var rebootParamPaths = []string{"/run/systemd/reboot-param", shutdown.OldRoot + "/run/systemd/reboot-param"}

// rebootParam is the reboot's argument, "" for none: the first line of
// the first of paths that exists, trimmed, as systemd reads it. One the
// kernel would not take whole (over 255 bytes) or with control characters
// is refused: the reboot then goes without it, said.
func rebootParam(paths ...string) (string, error) {
	for _, p := range paths {
		// Never blocking on a FIFO, nor following a link: PID 1 reads it.
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		var b []byte
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("a %v, expected a regular file", fi.Mode().Type())
		}
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(f, 4096))
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reboot argument %s: %w: rebooting without it", p, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		arg := strings.TrimSpace(line)
		switch {
		case len(arg) > 255:
			return "", fmt.Errorf("reboot argument %s: %d bytes, expected at most 255: rebooting without it", p, len(arg))
		case strings.ContainsFunc(arg, unicode.IsControl):
			return "", fmt.Errorf("reboot argument %s: %q: expected no control characters: rebooting without it", p, arg)
		}
		return arg, nil
	}
	return "", nil
}

// undoBoot undoes what the init set up and logs what it did and could not.
func undoBoot(log *logger) {
	var st shutdown.State
	raw, err := os.ReadFile("/" + filepath.Base(shutdown.StatePath))
	if err == nil {
		st, err = shutdown.ParseState(raw)
	}
	if err != nil {
		log.Warnf("shutdown: %v: unmounting %s without knowing keel's devices", err, shutdown.OldRoot)
	}
	sys := kernelShutdownSys()
	sys.Progress = watchdogPinger(watchdogSysfs, watchdogDev, os.Getenv("WATCHDOG_DEVICE"))
	res := shutdown.Undo(sys, st, shutdown.DefaultOptions)
	if len(res.WrittenBack) > 0 {
		log.Infof("shutdown: written back: %s", strings.Join(res.WrittenBack, " "))
	}
	log.Infof("shutdown: unmounted %d below %s: %s", len(res.Unmounted), shutdown.OldRoot, strings.Join(res.Unmounted, " "))
	if len(res.Removed) > 0 {
		log.Infof("shutdown: removed device-mapper devices %s", strings.Join(res.Removed, " "))
	}
	for _, p := range res.Problems {
		log.Errorf("shutdown: could not undo %s", p)
	}
	if len(res.Problems) == 0 {
		log.Infof("shutdown: everything keel set up is undone (%s)", describeState(st))
		return
	}
	log.Errorf("shutdown: %d thing(s) could not be undone (above); going on", len(res.Problems))
}

// watchdogPinger pings the hardware watchdog while the shutdown's sync
// makes progress. systemd-shutdown leaves it running when it executes the
// shutdown program (RebootWatchdogSec, 10 minutes by default), and a long
// write-back to slow storage could otherwise outlast it: a reset in the
// middle of the flush the sync is there for (found by a hunting helper).
// A watchdog that is not active is never opened (an open starts it, and a
// halt must stay halted); one that stops making progress stops the pings.
// The watchdog is systemd's WatchdogDevice= when it names one
// (WATCHDOG_DEVICE in the environment systemd-shutdown hands on:
// /dev/watchdog1), else the first; a fleet's /dev/watchdog1 used to get no
// ping at all (found by a hunting helper).
func watchdogPinger(sysfs, dev, device string) func() {
	name, node := "watchdog0", "watchdog"
	if n, ok := watchdogName(device); ok {
		name, node = n, filepath.Base(device)
	}
	var f *os.File
	return func() {
		if f == nil {
			state, err := os.ReadFile(filepath.Join(sysfs, name, "state"))
			if err != nil || strings.TrimSpace(string(state)) != "active" {
				return
			}
			if f, err = os.OpenFile(filepath.Join(dev, node), os.O_WRONLY, 0); err != nil {
				f = nil
				return
			}
		}
		_, _ = f.Write([]byte{0}) // any byte but 'V' pings; never closed with 'V'
	}
}

// watchdogName is the sysfs name of the watchdog device path names:
// /dev/watchdogN is watchdogN, /dev/watchdog the first. Anything else is
// not a watchdog this program pings.
func watchdogName(path string) (string, bool) {
	base := filepath.Base(path)
	switch {
	case filepath.Dir(path) != "/dev":
		return "", false
	case base == "watchdog":
		return "watchdog0", true
	case strings.HasPrefix(base, "watchdog") && len(base) > len("watchdog") && strings.Trim(base[len("watchdog"):], "0123456789") == "":
		return base, true
	}
	return "", false
}

// describeState names keel's mounts and devices for the log.
func describeState(st shutdown.State) string {
	var parts []string
	for _, m := range st.Mounts {
		parts = append(parts, m.Role+" "+m.Target)
	}
	for _, d := range st.DM {
		parts = append(parts, "dm "+d)
	}
	if len(parts) == 0 {
		return "no undo record"
	}
	return strings.Join(parts, ", ")
}

func kernelShutdownSys() shutdown.Sys {
	return shutdown.Sys{
		Mountinfo: func() ([]byte, error) { return os.ReadFile("/proc/self/mountinfo") },
		Unmount:   unix.Unmount,
		RemountRO: func(target string) error {
			return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		},
		RemoveDM: func(name string) error {
			err := devmapper.Remove(name)
			if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
				return shutdown.ErrGone
			}
			if err == nil {
				_ = os.Remove(filepath.Join("/dev/mapper", name))
			}
			// The library's errors name the ioctl's number; the errno is
			// what the console needs.
			if errno, ok := errors.AsType[unix.Errno](err); ok {
				return errno
			}
			return err
		},
		Holders: holders,
		Sync:    unix.Sync,
		SyncFS: func(target string) error {
			fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Syncfs(fd)
		},
		Dirty:   dirtyKiB,
		Written: writtenPages,
	}
}

// writtenPages is /proc/vmstat's count of pages written back since boot.
func writtenPages() (uint64, error) {
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return 0, err
	}
	return shutdown.WrittenPages(b)
}

// dirtyKiB is what /proc/meminfo says waits to be written back: Dirty and
// Writeback, in KiB.
func dirtyKiB() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return shutdown.DirtyKiB(b)
}

// holders names the processes with a working directory, root or open file
// at or below point: "312 @keel-hold".
func holders(point string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid := e.Name()
		if pid == "1" || pid == "self" || strings.Trim(pid, "0123456789") != "" {
			continue
		}
		if holds("/proc/"+pid, point) {
			out = append(out, pid+" "+processName("/proc/"+pid))
		}
	}
	return out
}

func holds(proc, point string) bool {
	links := []string{proc + "/cwd", proc + "/root", proc + "/exe"}
	fds, _ := os.ReadDir(proc + "/fd")
	for _, fd := range fds {
		links = append(links, proc+"/fd/"+fd.Name())
	}
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && shutdown.Under(t, point) {
			return true
		}
	}
	return false
}

func processName(proc string) string {
	if b, err := os.ReadFile(proc + "/cmdline"); err == nil && len(b) > 0 {
		return strings.SplitN(string(b), "\x00", 2)[0]
	}
	b, _ := os.ReadFile(proc + "/comm")
	return "[" + strings.TrimSpace(string(b)) + "]"
}

// performVerb reboots, powers off, halts or kexecs (a loaded kernel, else
// a reboot). It never returns: if reboot(2) fails it waits forever rather
// than let PID 1 exit.
func performVerb(log *logger, verb shutdown.Verb, param string) {
	defer func() {
		if r := recover(); r != nil {
			_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		}
		for {
			time.Sleep(time.Hour)
		}
	}()
	if verb == shutdown.Kexec {
		if b, _ := os.ReadFile("/sys/kernel/kexec_loaded"); strings.TrimSpace(string(b)) == "1" {
			log.Infof("shutdown: kexec into the loaded kernel")
			err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
			log.Errorf("shutdown: kexec failed: %v; rebooting", err)
		} else {
			log.Warnf("shutdown: kexec asked but no kernel is loaded; rebooting")
		}
		verb = shutdown.Reboot
	}
	doReboot(log, verb, param, rebootSyscall)
}

// rebootSyscall is reboot(2) with cmd and, for LINUX_REBOOT_CMD_RESTART2,
// its argument.
func rebootSyscall(cmd int, arg string) error {
	if cmd != unix.LINUX_REBOOT_CMD_RESTART2 {
		return unix.Reboot(cmd)
	}
	p, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// doReboot makes the reboot(2) call of verb (reboot, poweroff, halt) and
// returns only if it failed. A reboot with param (`systemctl reboot ARG`)
// hands it to the kernel (LINUX_REBOOT_CMD_RESTART2), as systemd-shutdown
// would: a board's boot mode (recovery, the bootloader) chosen that way
// was dropped; refused, the reboot goes without it.
func doReboot(log *logger, verb shutdown.Verb, param string, reboot func(cmd int, arg string) error) {
	cmd := map[shutdown.Verb]int{
		shutdown.Reboot:   unix.LINUX_REBOOT_CMD_RESTART,
		shutdown.PowerOff: unix.LINUX_REBOOT_CMD_POWER_OFF,
		shutdown.Halt:     unix.LINUX_REBOOT_CMD_HALT,
	}[verb]
	if cmd == 0 {
		cmd, verb = unix.LINUX_REBOOT_CMD_RESTART, shutdown.Reboot
	}
	if cmd == unix.LINUX_REBOOT_CMD_RESTART && param != "" {
		log.Infof("shutdown: reboot with argument %q", param)
		err := reboot(unix.LINUX_REBOOT_CMD_RESTART2, param)
		log.Errorf("shutdown: reboot with argument %q failed: %v; rebooting without it", param, err)
	}
	log.Infof("shutdown: %s", verb)
	if err := reboot(cmd, ""); err != nil {
		log.Errorf("shutdown: %s failed: %v; halting here", verb, err)
	}
}
