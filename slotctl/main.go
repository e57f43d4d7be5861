// SPDX-License-Identifier: Apache-2.0

// Command slotctl manages keel's A/B slots: it makes signing keys, seals
// SquashFS images (verity hash tree + signed slot header) and inspects and
// verifies sealed slots.
//
// Each subcommand lives in its own file and is registered by one line in
// commands().
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func main() {
	os.Exit(run(argsOf(os.Args), &env{
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		now:    time.Now,
	}))
}

// argsOf is the command line to run: slotctl's arguments, or with argv[0]
// named keel-rauc-backend (a symlink to slotctl, which RAUC runs as its
// custom bootloader backend) the rauc-backend command's.
func argsOf(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if filepath.Base(argv[0]) == raucBackendName {
		return append([]string{"rauc-backend"}, argv[1:]...)
	}
	return argv[1:]
}

// env is what a subcommand may touch of the outside world, so tests can run
// commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// root is where the running system's /run, /dev and /sys are: "" for
	// "/"; tests give each a directory of its own, so that none touches
	// the host's /run/keel (its lock, boot report and data partition).
	root string
}

// path is the running system's absolute path p, under e.root.
func (e *env) path(p string) string {
	if e.root == "" {
		return p
	}
	return filepath.Join(e.root, p)
}

// command is one subcommand: run gets the arguments after its name.
type command struct {
	name    string
	args    string // synopsis of the arguments, for usage lines
	summary string
	run     func(e *env, args []string) error
}

// commands lists the subcommands in the order help shows them.
func commands() []command {
	return []command{
		{"keygen", "--out KEY [--force]", "make an ed25519 signing key pair (KEY, KEY.pub)", runKeygen},
		{"seal", "--image ROOT.squashfs --out VERITY.img [--key KEY] [--image-id ID] [--salt HEX]", "write a slot's verity partition: signed header + hash tree", runSeal},
		{"inspect", "VERITY.img [--json]", "print a slot header", runInspect},
		{"verify", "--image ROOT.squashfs --verity VERITY.img [--trust KEY.pub]...", "check a slot: header, signature and the whole hash tree", runVerify},
		{"status", "[--json] [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "show both slots' boot state and headers and the running boot", runStatus},
		{"mark-good", "[SLOT] [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "mark the running slot good (on a disk image: SLOT)", runMarkGood},
		{"mark-bad", "SLOT [--reason TEXT] [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "retire a slot that is not running", runMarkBad},
		{"set-next", "SLOT [--tries N] [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "boot a slot next, on trial for N boots (default 3); the only good slot stays good", runSetNext},
		{"etc-diff", "[--json] [--boot-report PATH] [--upper DIR] [--image DIR]", "list what is changed locally in /etc against the running image", runEtcDiff},
		{"install", "--slot SLOT IMAGE VERITY [--trust KEY.pub]... [--tries N] [--quiet|--progress] [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "write a sealed image into a slot that is not running, verify it, set it next", runInstall},
		{"rauc-backend", "get-primary|set-primary SLOT|get-state SLOT|set-state SLOT good|bad|get-current [--disk IMAGE] [--bootstate PATH] [--boot-report PATH]", "RAUC's custom bootloader backend over keel's boot state (docs/rauc.md)", runRaucBackend},
	}
}

// run dispatches args and returns the exit status: 0 on success, 1 when
// the command failed, 2 on a usage error.
func run(args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return help(e, args[1:])
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(e.stderr, "slotctl: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	err := c.run(e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "slotctl %s: %v\nusage: slotctl %s %s\n", c.name, err, c.name, c.args)
		return 2
	}
	fmt.Fprintf(e.stderr, "slotctl %s: %v\n", c.name, err)
	return 1
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// help prints the command list, or one command's flags.
func help(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stdout)
		return 0
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(e.stderr, "slotctl help: unknown command %q\n", args[0])
		return 2
	}
	return run([]string{c.name, "-h"}, &env{stdout: e.stdout, stderr: e.stdout, getenv: e.getenv, now: e.now, root: e.root})
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: slotctl COMMAND [ARGS]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nslotctl help COMMAND shows a command's flags.")
}
