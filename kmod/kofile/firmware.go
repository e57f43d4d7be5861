// SPDX-License-Identifier: Apache-2.0

package kofile

import (
	"os"
	"path"
	"path/filepath"
	"strings"
)

// FirmwareFile is a firmware file found on the build host.
type FirmwareFile struct {
	Source string // on the build host
	Path   string // inside the initramfs, under /lib/firmware
}

// FindFirmware looks up firmware names under fwDir (SYSROOT/lib/firmware),
// also as .xz and .zst files, which the kernel decompresses itself. Names
// that are absent come back in missing: a module declares every firmware
// any of its devices might want, and most machines need none of them.
func FindFirmware(fwDir string, names []string) (found []FirmwareFile, missing []string) {
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		clean := path.Clean("/" + name)[1:]
		if clean == "" || strings.Contains(name, "..") {
			missing = append(missing, name) // never leave fwDir
			continue
		}
		f, ok := findOne(fwDir, clean)
		if !ok {
			missing = append(missing, name)
			continue
		}
		found = append(found, f)
	}
	return found, missing
}

func findOne(fwDir, name string) (FirmwareFile, bool) {
	for _, ext := range []string{"", ".xz", ".zst"} {
		src := filepath.Join(fwDir, name+ext)
		if fi, err := os.Stat(src); err == nil && fi.Mode().IsRegular() {
			return FirmwareFile{Source: src, Path: "/lib/firmware/" + name + ext}, true
		}
	}
	return FirmwareFile{}, false
}
