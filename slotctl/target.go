// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"golang.org/x/sys/unix"
)

// target is the system a boot-state command works on: the running system
// (partitions found by GPT label, the booted slot from the boot report) or
// a disk image given with --disk, from which nothing is running.
type target struct {
	disk       string // --disk: GPT disk image file
	bootstate  string // --bootstate: the boot state partition or file
	reportPath string // --boot-report
	root       string // where /dev, /sys and /run are: "/" except in tests
	sys        *system
	// warn gets the warnings of a command that still succeeds (stderr).
	warn io.Writer
	// mounted reports whether a directory is a mount point (isMountPoint;
	// tests replace it).
	mounted func(dir string) bool
	// warnedGPT: the damage of --disk's primary GPT was said.
	warnedGPT bool
	// diskClaim is the exclusive open of a --disk block device
	// (claimDisk), held until the process ends.
	diskClaim *os.File
}

// targetFlags registers --disk, --bootstate and --boot-report.
func targetFlags(e *env, fs *flag.FlagSet) *target {
	t := &target{root: e.path("/"), warn: fs.Output()}
	fs.StringVar(&t.disk, "disk", "", "work on this GPT disk image file instead of the running system")
	fs.StringVar(&t.bootstate, "bootstate", "", "boot state partition or file (default: the partition labelled "+bootstate.Label+")")
	fs.StringVar(&t.reportPath, "boot-report", "", "boot report telling which slot is running (default "+report.Path+"; not read with --disk unless given)")
	return t
}

// open opens the partition labelled label.
func (t *target) open(label string, write bool) (*partition, error) {
	if label == bootstate.Label && t.bootstate != "" {
		return openPath(label, t.bootstate, write)
	}
	if t.disk != "" {
		if err := t.claimDisk(write); err != nil {
			return nil, err
		}
		p, err := openInDisk(t.disk, label, write)
		if err == nil && p.damage != nil && !t.warnedGPT && t.warn != nil {
			t.warnedGPT = true
			fmt.Fprintf(t.warn, "slotctl: warning: %s: the primary GPT is damaged (%v): its backup was used; rewrite the primary from it (gdisk %s, then w)\n", t.disk, p.damage, t.disk)
		}
		return p, err
	}
	if label == bootstate.Label {
		if r, err := t.bootReport(); err == nil && r != nil && r.Devices["bootstate"] != "" {
			return openPath(label, r.Devices["bootstate"], write) // the device the init used
		}
	}
	sys, err := t.system()
	if err != nil {
		return nil, err
	}
	dev, err := sys.find(label)
	if err != nil {
		return nil, err
	}
	if write {
		if err := sys.checkWritable(label, dev); err != nil {
			return nil, err
		}
	}
	return openPath(label, dev, write)
}

// system reads the running system's block devices once.
func (t *target) system() (*system, error) {
	if t.sys != nil {
		return t.sys, nil
	}
	rep, err := t.bootReport()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if t.sys, err = loadSystem(t.root, rep); err != nil {
		return nil, err
	}
	return t.sys, nil
}

// bootReport reads the report of the running boot; nil, nil for a disk
// image without --boot-report.
func (t *target) bootReport() (*report.Report, error) {
	path := t.reportPath
	if path == "" {
		if t.disk != "" {
			return nil, nil
		}
		path = filepath.Join(t.root, report.Path)
	}
	return report.Read(path)
}

// running returns the slot the system runs from, "" when it runs from none
// (a disk image, or a boot not from an A/B slot). Without a boot report it
// fails: a command that changes a slot must not guess.
func (t *target) running() (slots.Slot, error) {
	r, err := t.bootReport()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("cannot tell which slot is running: %w (was this system booted by keel? use --disk for a disk image)", err)
		}
		return "", err
	}
	if r == nil || r.Mode != "slot" {
		return "", nil
	}
	return slots.ParseSlot(r.Slot)
}

// refuseRunning refuses to change the slot the system runs from.
func (t *target) refuseRunning(x slots.Slot, what string) error {
	run, err := t.running()
	if err != nil {
		return err
	}
	if run == x {
		return fmt.Errorf("slot %s is the running slot: refusing to %s it (boot the other slot first)", x, what)
	}
	return nil
}

// refuseLastGood refuses to overwrite or retire slot x while it is the
// machine's only good slot and the running slot is not confirmed yet: if
// the running image then fails, nothing that worked would be left to boot.
// force overrides it.
func (t *target) refuseLastGood(x slots.Slot, what string, force bool) error {
	if force {
		return nil
	}
	run, err := t.running()
	if err != nil || run == "" {
		return err // nothing runs (a disk image): nothing to protect
	}
	s, err := t.withState(func(*bootstate.State) error { return nil })
	if err != nil {
		return err
	}
	if st, o := s.Slot(x), s.Slot(x.Other()); st.Good && !o.Good {
		return fmt.Errorf("slot %s is the only good slot and the running slot %s is not confirmed yet (slotctl mark-good): refusing to %s it, since nothing that worked would be left to boot (--force to do it anyway)", x, x.Other(), what)
	}
	return nil
}

// withState loads the boot state, lets change modify it, and saves it when
// it changed. It returns the state as saved (or as found).
func (t *target) withState(change func(s *bootstate.State) error) (bootstate.State, error) {
	unlock, err := t.lockState()
	if err != nil {
		return bootstate.State{}, err
	}
	defer unlock()
	p, s, err := t.openState(true)
	if err != nil {
		return s, err
	}
	defer p.Close()
	if err := t.refuseLostState(p, s); err != nil {
		return s, err
	}
	before := s
	if err := change(&s); err != nil {
		return s, err
	}
	if s == before {
		return s, nil
	}
	// The system slotctl runs in got past its data mount, or the disk is
	// an operator's: a mount the init counted (UnfinishedDataMounts) has
	// ended. Written into both copies, the count would also make both
	// unreadable to a keel older than it.
	s.UnfinishedDataMounts = 0
	if err := bootstate.SaveBoth(p, &s); err != nil {
		return s, fmt.Errorf("%s: %w", p, err)
	}
	if err := t.keepCopy(s); err != nil && t.warn != nil {
		fmt.Fprintf(t.warn, "slotctl: warning: the boot state is saved, but not its copy on the data partition (a boot that cannot read %s counts from the copy): %v\n", p, err)
	}
	return s, nil
}

// refuseLostState refuses to decide from, or write, a bootstate partition
// that holds no valid record (both copies blank or damaged) when it is the
// one the running boot read or wrote a record on (its report's
// bootstate_seq, on its bootstate device): it was erased or damaged since.
// Another partition or file (a --disk image, a --bootstate being
// provisioned) may well be new. Taken for a new machine's, its defaults
// have no good slot, a rollback floor of 0 and no last good image: an
// install overwrote the only good slot with an image below the floor while
// the running trial was unconfirmed, a mark-good put the other good slot
// back on trial, and either wrote those defaults over the data partition's
// copy, which the init restores from (found by a hunting helper). The next
// boot restores the state from that copy.
func (t *target) refuseLostState(p *partition, s bootstate.State) error {
	if s.Initialised {
		return nil
	}
	r, err := t.bootReport()
	if err != nil || r == nil || r.BootStateSeq == 0 || p.off != 0 || !sameDevice(p.f, r.Devices["bootstate"]) {
		return nil // a new machine, a boot counted in memory, or not this boot's partition
	}
	return fmt.Errorf("%s holds no valid boot state record, yet this boot left record %d there: it was erased or damaged since; refusing to decide from or write the defaults, which know no good slot and no rollback floor (reboot: the init restores the state from the data partition's copy)", p, r.BootStateSeq)
}

// sameDevice reports whether f is path: the same block device (by device
// number: /dev/vda3 and /dev/disk/by-partlabel/bootstate), or the same
// file.
func sameDevice(f *os.File, path string) bool {
	if path == "" {
		return false
	}
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	if a.Mode()&os.ModeDevice != 0 && b.Mode()&os.ModeDevice != 0 {
		as, aok := a.Sys().(*syscall.Stat_t)
		bs, bok := b.Sys().(*syscall.Stat_t)
		return aok && bok && as.Rdev == bs.Rdev
	}
	return os.SameFile(a, b)
}

// claimDisk, before --disk is written, claims a block device for this
// process: an exclusive open of the whole disk, kept until the process
// ends, which the kernel refuses (EBUSY) while any of its partitions is
// mounted or under a device-mapper device. --disk is for a disk no system
// runs from: on the running system's disk it skipped every check of the
// running slot and wrote under its mounted verity mapping (found by a
// hunting helper). A regular file (a disk image) needs no claim.
func (t *target) claimDisk(write bool) error {
	if !write || t.diskClaim != nil {
		return nil
	}
	fi, err := os.Stat(t.disk)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil // a disk image; openInDisk names a missing one
	}
	f, err := os.OpenFile(t.disk, os.O_RDONLY|unix.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("--disk %s: a partition of this disk is mounted or mapped (the running system's disk?), or another program (another slotctl --disk?) holds the disk: refusing to write it; on the running system, leave --disk out: %w", t.disk, err)
	}
	if err != nil {
		return fmt.Errorf("--disk %s: %w", t.disk, err)
	}
	t.diskClaim = f
	return nil
}

// stateLockWait bounds how long a change of the boot state waits for
// another slotctl's (a variable for tests). Each holds the lock for one
// read and write of the state, not for an install's copy.
var stateLockWait = 30 * time.Second

// lockWaiting, when not nil, is called each time lockState finds the lock
// held (tests).
var lockWaiting func()

// lockPath is the file whose flock serializes the changes of this
// target's boot state: a --bootstate that is a regular file, or else the
// --disk image, is its own; the running system's state, on a block device
// whichever path names it (the label's, the report's, a --bootstate
// /dev/… of an agent), is guarded by one file, runLock: an agent's
// set-next --bootstate /dev/vda3 used to lock the device node while
// keel-mark-good.service locked /run/keel/slotctl.lock, and the two
// wrote the state at once.
func (t *target) lockPath() (path string, runLock bool) {
	if t.bootstate != "" {
		if fi, err := os.Stat(t.bootstate); err == nil && fi.Mode().IsRegular() {
			return t.bootstate, false
		}
	} else if t.disk != "" {
		return t.disk, false
	}
	return filepath.Join(t.root, "run/keel/slotctl.lock"), true
}

// lockState serializes the changes of the boot state between slotctl
// processes: keel-mark-good.service and an update agent's set-next or
// install may run at once, and the second one's exclusive open of the
// bootstate partition failed (EBUSY), the boot's confirmation lost (found
// by a hunting helper). The lock is an flock on the file that holds the
// state (lockPath).
func (t *target) lockState() (unlock func(), err error) {
	path, runLock := t.lockPath()
	flag := os.O_RDONLY
	if runLock {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("the boot state's lock: %w", err)
		}
		// keel's own file: never through a symlink planted there. The
		// operator's --bootstate and --disk may well be symlinks
		// (/dev/disk/by-partlabel/…).
		flag |= os.O_CREATE | unix.O_NOFOLLOW
	}
	// Root's alone: flock needs no write permission, so a lock file others
	// can open is one any local user could hold, every mark-good then
	// failing (found in review).
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the boot state's lock: %w", err)
	}
	if flag&os.O_CREATE != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("the boot state's lock: %w", err)
		}
	}
	deadline := time.Now().Add(stateLockWait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if lockWaiting != nil && errors.Is(err, unix.EWOULDBLOCK) {
			lockWaiting()
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("the boot state is being changed by another slotctl: waited %v for the lock on %s", stateLockWait, path)
			}
			return nil, fmt.Errorf("the boot state's lock on %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepCopy writes s, as saved, to the data partition's copy of the boot
// state (bootstate.CopyName): the init counts from it in a boot that cannot
// read the bootstate partition (docs/formats.md, "The data partition's
// copy"). A failure is a warning, not the command's: the state itself is
// saved, and the next change (the next boot's mark-good) writes the copy
// again. Temporary files a power cut left are removed first.
func (t *target) keepCopy(s bootstate.State) error {
	p, err := t.dataCopyPath()
	if p == "" || err != nil {
		return err
	}
	olds, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "."+bootstate.CopyName+".tmp-*"))
	for _, o := range olds {
		os.Remove(o)
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a %s, expected a regular file: remove it", p, datapart.Kind(fi.Mode()))
	}
	rec := bootstate.MarshalRecord(s)
	return writeFile(p, 0o644, true, func(w io.Writer) error {
		_, err := w.Write(rec)
		return err
	})
}

// dataCopyPath is where the copy of the boot state goes: the top of the
// data partition, where the init mounted it (datapart.DefaultRoot). It is
// "" when there is no copy to keep: the state is not the running system's
// own (--disk, --bootstate), or this boot did not mount a data partition
// (none, volatile, not a slot boot). A data partition the report names but
// that is no longer mounted there is an error: the copy would land on
// tmpfs.
func (t *target) dataCopyPath() (string, error) {
	if t.disk != "" || t.bootstate != "" {
		return "", nil
	}
	r, err := t.bootReport()
	if err != nil || r == nil || r.Mode != "slot" || r.Data == nil || r.Data.Volatile {
		return "", nil
	}
	dir := filepath.Join(t.root, datapart.DefaultRoot)
	mounted := t.mounted
	if mounted == nil {
		mounted = isMountPoint
	}
	if !mounted(dir) {
		return "", fmt.Errorf("%s is not mounted (the boot report says the data partition %s was)", dir, r.Data.Device)
	}
	return filepath.Join(dir, bootstate.CopyName), nil
}

// isMountPoint reports whether dir is on another file system than its
// parent (a bind mount of the same one would not show; the init makes
// none there).
func isMountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// loadState reads the boot state without opening it for writing.
func (t *target) loadState() (bootstate.State, error) {
	p, s, err := t.openState(false)
	if err != nil {
		return s, err
	}
	p.Close()
	return s, nil
}

// openState opens the boot state partition and reads the state.
func (t *target) openState(write bool) (*partition, bootstate.State, error) {
	p, err := t.open(bootstate.Label, write)
	if err != nil {
		return nil, bootstate.State{}, err
	}
	if err := bootstate.CheckSize(p.size); write && err != nil {
		p.Close()
		return nil, bootstate.State{}, fmt.Errorf("%s: %w", p, err)
	}
	s, _, err := bootstate.Load(p)
	if err != nil {
		p.Close()
		return nil, s, fmt.Errorf("%s: %w", p, err)
	}
	return p, s, nil
}

// slotArg parses the one positional SLOT argument.
func slotArg(pos []string) (slots.Slot, error) {
	if len(pos) != 1 {
		return "", usagef("expected one slot (a or b), got %d arguments", len(pos))
	}
	x, err := slots.ParseSlot(pos[0])
	if err != nil {
		return "", usageError{err.Error()}
	}
	return x, nil
}
