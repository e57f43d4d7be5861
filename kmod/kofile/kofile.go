// SPDX-License-Identifier: Apache-2.0

// Package kofile reads kernel module files on the build host: it
// decompresses .ko.xz/.ko.zst/.ko.gz and reads the .modinfo section. It is
// separate from package kmod so that the init, which imports kmod to load
// modules, does not carry decompressors and an ELF parser.
package kofile

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Read returns the uncompressed contents of a module file, choosing the
// decompressor by suffix. xz goes through the xz tool: no xz decoder is
// among keel's dependencies.
func Read(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.zst"):
		return readWith(path, func(r io.Reader) ([]byte, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return io.ReadAll(d)
		})
	case strings.HasSuffix(path, ".ko.gz"):
		return readWith(path, func(r io.Reader) ([]byte, error) {
			g, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(g)
		})
	case strings.HasSuffix(path, ".ko.xz"):
		out, err := exec.Command("xz", "-dc", "--", path).Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc %s: %w%s", path, err, stderrOf(err))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: expected a .ko, .ko.xz, .ko.zst or .ko.gz file", path)
}

func readWith(path string, decode func(io.Reader) ([]byte, error)) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// Modinfo returns the "key=value" strings of a module's .modinfo section,
// in order, as pairs.
func Modinfo(ko []byte) ([][2]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("ELF file has no .modinfo section: not a kernel module")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	var out [][2]string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out, nil
}

// Firmware returns the firmware files a module declares (modinfo
// "firmware=" fields), as names under /lib/firmware.
func Firmware(ko []byte) ([]string, error) {
	info, err := Modinfo(ko)
	if err != nil {
		return nil, err
	}
	var fw []string
	for _, kv := range info {
		if kv[0] == "firmware" && kv[1] != "" {
			fw = append(fw, kv[1])
		}
	}
	return fw, nil
}
