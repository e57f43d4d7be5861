// SPDX-License-Identifier: Apache-2.0

// Command mkinitrd builds keel's initramfs: the init, the kernel modules it
// needs with their dependencies and firmware, an optional emergency shell
// and the baked configuration, packed into compressed newc archives that
// are byte-identical for identical inputs: the init's precompressed segment
// when there is one (see segment.go), then everything else.
//
//	mkinitrd --out initrd.img [flags]
//	mkinitrd ls FILE
//	mkinitrd cat FILE PATH
//	mkinitrd init-segment --init PATH [--out FILE]
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitrd:", err)
		os.Exit(1)
	}
}

// run is main without the process: tests and the benchmark call it.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "ls":
			if len(args) != 2 {
				return fmt.Errorf("usage: mkinitrd ls FILE")
			}
			return list(args[1], stdout)
		case "init-segment":
			return initSegmentCmd(args[1:], stdout)
		case "cat":
			if len(args) != 3 {
				return fmt.Errorf("usage: mkinitrd cat FILE PATH")
			}
			return cat(args[1], args[2], stdout)
		}
	}
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return build(opts, stdout, stderr)
}
