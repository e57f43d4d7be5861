// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keel-boot/keel/initramfs"
	"golang.org/x/sys/unix"
)

// options are the resolved command-line flags.
type options struct {
	out       string
	kver      string
	sysroot   string
	modules   []string // --modules, required
	noDefault bool
	compress  initramfs.Compression
	trust     []string
	locked    bool
	shell     string // "builtin", the host path of a busybox, or "" for none
	cmdline   string
	init      string
	adds      []string
	luksKey   string // host path of a key file for the data partition
	// dataEncrypted bakes data_must_be_encrypted: --data-must-be-encrypted,
	// or --locked without --data-may-be-plain.
	dataEncrypted bool
	// maxUnconfirmed bakes max_unconfirmed (--max-unconfirmed).
	maxUnconfirmed int
	watchdog       int // --watchdog: seconds, baked as rd.watchdog=
	verbose        bool
	mtime          uint32
}

// listFlag is a repeatable flag; with split set, each value may also be a
// comma-separated list.
type listFlag struct {
	vals  *[]string
	split bool
}

func (l listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l listFlag) Set(s string) error {
	if !l.split {
		*l.vals = append(*l.vals, s)
		return nil
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.vals = append(*l.vals, v)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	var compress, shell string
	var mustEncrypt, mayBePlain bool
	fs := flag.NewFlagSet("mkinitrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "", "output image `file` (required)")
	fs.StringVar(&o.kver, "kver", "", "kernel release (default: the running kernel's)")
	fs.StringVar(&o.sysroot, "sysroot", "/", "root `dir` to take modules and firmware from")
	fs.Var(listFlag{&o.modules, true}, "modules", "extra modules `a,b,...` (repeatable)")
	fs.BoolVar(&o.noDefault, "no-default-modules", false, "include only the --modules given")
	fs.StringVar(&compress, "compress", "zstd", "zstd, gzip or none")
	fs.Var(listFlag{&o.trust, false}, "trust", "ed25519 public `key.pub` (PKIX PEM) trusted for slot headers (repeatable)")
	fs.BoolVar(&o.locked, "locked", false, "refuse options that weaken the boot; no shell")
	fs.StringVar(&shell, "shell", "builtin", "emergency shell: builtin (keel's, inside the init), none, or the `path` of a static busybox")
	fs.StringVar(&o.cmdline, "cmdline", "", "default kernel command-line options baked in")
	fs.StringVar(&o.init, "init", "", "keel init binary (default: init next to mkinitrd)")
	fs.Var(listFlag{&o.adds, false}, "add", "extra file or directory `SRC:DST` (repeatable)")
	fs.StringVar(&o.luksKey, "luks-keyfile", "", "key `file` that unlocks a LUKS2 data partition (baked in: keep the initramfs private)")
	fs.BoolVar(&mustEncrypt, "data-must-be-encrypted", false, "use the data partition only if it is LUKS2; a plain one makes the boot volatile (the --locked default)")
	fs.BoolVar(&mayBePlain, "data-may-be-plain", false, "with --locked: use a plain (unencrypted) data partition too")
	fs.IntVar(&o.maxUnconfirmed, "max-unconfirmed", 0, "boots of a good slot that may go unconfirmed (no slotctl mark-good) before it is demoted below the other good slot, 1 to 255 (default 3)")
	fs.IntVar(&o.watchdog, "watchdog", 0, "bake rd.watchdog=`SECONDS`: a hardware watchdog left running for systemd, 1 to 3600 (mandatory when --locked)")
	fs.BoolVar(&o.verbose, "v", false, "report skipped modules, soft dependencies and firmware")
	fs.String("config", defaultConfig, "build options `file` of KEY=VALUE lines, one per long flag; flags given here override it (default read only with --sysroot /, if it exists; '' for none)")
	fs.Bool("no-config", false, "read no config file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (subcommands: ls, cat, init-segment)", fs.Arg(0))
	}
	if err := readConfig(fs); err != nil {
		return nil, err
	}
	var err error
	if o.cmdline, err = bakeWatchdog(o.cmdline, o.watchdog); err != nil {
		return nil, err
	}
	shellSet := false
	fs.Visit(func(f *flag.Flag) { shellSet = shellSet || f.Name == "shell" })
	if err := o.resolve(compress, shell, shellSet); err != nil {
		return nil, err
	}
	if o.maxUnconfirmed < 0 || o.maxUnconfirmed > 255 {
		return nil, fmt.Errorf("--max-unconfirmed %d: expected 1 to 255", o.maxUnconfirmed)
	}
	if mustEncrypt && mayBePlain {
		return nil, errors.New("--data-must-be-encrypted and --data-may-be-plain: expected at most one of them")
	}
	o.dataEncrypted = mustEncrypt || (o.locked && !mayBePlain)
	return o, nil
}

// resolve fills in defaults and checks flags against each other.
func (o *options) resolve(compress, shell string, shellSet bool) error {
	if o.out == "" {
		return errors.New("--out is required")
	}
	var err error
	if o.compress, err = initramfs.ParseCompression(compress); err != nil {
		return fmt.Errorf("--compress: %w", err)
	}
	if o.kver == "" {
		if o.kver, err = hostKernelRelease(); err != nil {
			return err
		}
	}
	if o.init == "" {
		if o.init, err = defaultInit(); err != nil {
			return err
		}
	}
	if o.shell, err = chooseShell(shell, shellSet, o.locked); err != nil {
		return err
	}
	if o.locked {
		if err := checkLocked(o.trust, o.cmdline); err != nil {
			return err
		}
	}
	o.mtime, err = sourceDateEpoch()
	return err
}

func hostKernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w (pass --kver)", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// defaultInit finds the keel init without flags: next to mkinitrd (the
// Makefile puts both in out/), or where `make install` puts it relative to
// mkinitrd's bin directory (PREFIX/lib/keel/init).
func defaultInit() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the init next to mkinitrd: %w (pass --init)", err)
	}
	dir := filepath.Dir(exe)
	candidates := []string{filepath.Join(dir, "init"), filepath.Join(dir, "..", "lib", "keel", "init")}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("no keel init at %s or %s (build it with make, or pass --init PATH)", candidates[0], filepath.Clean(candidates[1]))
}

// chooseShell applies the rules: --locked means no shell and refuses an
// explicit one; "none" is no shell; "builtin" (the default) is the rescue
// shell inside the init; anything else is a static busybox's path.
func chooseShell(shell string, set, locked bool) (string, error) {
	switch {
	case locked && set && shell != "none":
		return "", fmt.Errorf("--shell %s with --locked: a locked initramfs has no shell", shell)
	case locked || shell == "none":
		return "", nil
	case shell == "":
		return "", errors.New("--shell: expected builtin, none or a busybox path")
	}
	return shell, nil
}

// sourceDateEpoch is the mtime of every entry: 0, or SOURCE_DATE_EPOCH for
// builds that want a meaningful one (https://reproducible-builds.org/specs/source-date-epoch/).
func sourceDateEpoch() (uint32, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: expected seconds since 1970 that fit in 32 bits", s)
	}
	return uint32(v), nil
}
