// SPDX-License-Identifier: Apache-2.0

// Command keel-unlock recovers the volume key of a LUKS2 volume on the host
// as the init does (package unlock, memory locked around it as in
// init/data.go) and discards it: keel's `cryptsetup open
// --test-passphrase`, for `make bench` to time against cryptsetup on the
// same header. It maps nothing, so it needs no device-mapper; it is not
// shipped in any image.
//
//	keel-unlock --key-file FILE VOLUME
//
// It exits 0 when the key opens a key slot, 2 when none matches, 1 on any
// other error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/unlock"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("keel-unlock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "the key file (its whole content is the key, as cryptsetup reads it)")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if *keyFile == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: keel-unlock --key-file FILE VOLUME")
		return 1
	}
	secret, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keel-unlock: %v\n", err)
		return 1
	}
	defer clear(secret)
	release, err := unlock.LockMemory()
	if err != nil {
		fmt.Fprintf(stderr, "keel-unlock: %v (unlocking with memory unlocked)\n", err)
	}
	err = unlock.Opener{}.Check(fs.Arg(0), unlock.Key{Secret: secret, Kind: unlock.KeyFile})
	if rerr := release(); rerr != nil {
		fmt.Fprintf(stderr, "keel-unlock: %v\n", rerr)
	}
	switch {
	case errors.Is(err, unlock.ErrNoKeySlot):
		fmt.Fprintf(stderr, "keel-unlock: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "keel-unlock: %v\n", err)
		return 1
	}
	return 0
}
