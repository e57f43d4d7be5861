// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LoadFile loads the module at path with finit_module(2). The file must be
// an uncompressed .ko: mkinitrd decompresses modules at build time, so the
// init needs no decompressor and the kernel no MODULE_INIT_COMPRESSED_FILE.
func LoadFile(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}
