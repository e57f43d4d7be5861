// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Booting a bzImage under TCG spends about four seconds before the kernel's
// first instruction: SeaBIOS, then the bzImage's own decompressor
// unpacking an xz-compressed vmlinux instruction by instruction in the
// emulator. Every QEMU run of the tests and the bench paid it (~150 boots
// per CI run). The kernel inside is an ELF with a PVH entry point
// (CONFIG_PVH, set in Debian's kernels), which QEMU loads into guest memory
// itself and enters directly: the kernel then starts about 0.6–0.9 s after
// QEMU does. It is the same kernel, entered by another boot protocol; every
// figure the tests and the bench take is on the kernel's own clock or
// after it, so none of them moves. KEEL_QEMU_BZIMAGE=1 boots the bzImage as
// it is.

// pvhKernels remembers, per kernel file, what bootKernel chose, so that a
// test binary hashes and checks each kernel once.
var pvhKernels struct {
	sync.Mutex
	chosen map[string]string
}

// bootKernel returns the file QEMU is given for the kernel k: the PVH ELF
// extracted from k (kept in CacheDir()/kernels, named by k's hash) when k
// is an x86 bzImage whose payload this harness can decompress and is such
// an ELF; else k itself, with why in note (empty when k is used because
// KEEL_QEMU_BZIMAGE=1 asks for it).
func bootKernel(k string) (file, note string) {
	if os.Getenv("KEEL_QEMU_BZIMAGE") == "1" {
		return k, ""
	}
	pvhKernels.Lock()
	defer pvhKernels.Unlock()
	if f, ok := pvhKernels.chosen[k]; ok {
		return f, ""
	}
	f, err := pvhKernel(k)
	if err != nil {
		f, note = k, fmt.Sprintf("booting %s as a bzImage (slower under TCG): %v", k, err)
	}
	if pvhKernels.chosen == nil {
		pvhKernels.chosen = map[string]string{}
	}
	pvhKernels.chosen[k] = f
	return f, note
}

// pvhKernel extracts the vmlinux of the bzImage k into the cache, once per
// kernel content, and returns its path.
func pvhKernel(k string) (string, error) {
	image, err := os.ReadFile(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(image)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "kernels")
	out := filepath.Join(dir, "vmlinux-"+hex.EncodeToString(sum[:12]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	payload, err := bzImagePayload(image)
	if err != nil {
		return "", err
	}
	vmlinux, err := decompressPayload(payload)
	if err != nil {
		return "", err
	}
	if err := checkPVH(vmlinux); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Written beside and renamed into place: test binaries running at
	// the same time may extract the same kernel.
	tmp, err := os.CreateTemp(dir, ".vmlinux-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(vmlinux)
	if err = errors.Join(err, tmp.Close()); err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	return out, nil
}

// bzImagePayload returns the compressed kernel of an x86 bzImage: the
// setup header (Documentation/arch/x86/boot.rst, protocol 2.08 or later)
// gives its offset from the protected-mode code, which follows the
// setup_sects+1 sectors of real-mode setup, and its length.
func bzImagePayload(image []byte) ([]byte, error) {
	const (
		setupSectsOff = 0x1f1
		magicOff      = 0x202
		versionOff    = 0x206
		payloadOff    = 0x248
		payloadLenOff = 0x24c
	)
	if len(image) < payloadLenOff+4 || string(image[magicOff:magicOff+4]) != "HdrS" {
		return nil, errors.New("not an x86 bzImage (no HdrS setup header at 0x202)")
	}
	if v := binary.LittleEndian.Uint16(image[versionOff:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %#x, want 2.08 or later (payload fields)", v)
	}
	sects := int(image[setupSectsOff])
	if sects == 0 {
		sects = 4
	}
	start := (sects+1)*512 + int(binary.LittleEndian.Uint32(image[payloadOff:]))
	n := int(binary.LittleEndian.Uint32(image[payloadLenOff:]))
	if n <= 0 || start < 0 || start+n > len(image) || start+n < start {
		return nil, fmt.Errorf("bzImage payload at %d, %d bytes: outside the %d-byte image", start, n, len(image))
	}
	return image[start : start+n], nil
}

// decompressPayload decompresses a bzImage payload by its magic: xz (with
// the xz program, Debian's xz-utils), gzip or zstd. The build appends the
// uncompressed size after the stream; each decoder reads one stream and
// ignores it.
func decompressPayload(p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		cmd := exec.Command("xz", "--decompress", "--stdout", "--single-stream")
		cmd.Stdin = bytes.NewReader(p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, nil
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		r, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("gzip payload: %w", err)
		}
		r.Multistream(false)
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("gzip payload: %w", err)
		}
		return out, nil
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}) && len(p) > 4:
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		out, err := d.DecodeAll(p[:len(p)-4], nil)
		if err != nil {
			return nil, fmt.Errorf("zstd payload: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("bzImage payload compressed with a format the harness does not read (magic % x; it reads xz, gzip, zstd)", p[:min(len(p), 6)])
}

// pvhEntryNote is XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry point QEMU
// jumps to when it loads an ELF kernel itself.
const pvhEntryNote = 18

// checkPVH reports whether vmlinux is an x86-64 ELF carrying the PVH entry
// note, without which QEMU refuses to boot it.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("the decompressed kernel: %w", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("the decompressed kernel is for %v, want x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("the decompressed kernel's notes: %w", err)
		}
		if hasNote(b, f.ByteOrder, "Xen", pvhEntryNote) {
			return nil
		}
	}
	return errors.New("the decompressed kernel has no PVH entry note (CONFIG_PVH not set)")
}

// hasNote reports whether the ELF note segment b holds a note of the given
// owner name and type. Each note is namesz, descsz, type, then the name
// and the descriptor, each padded to 4 bytes.
func hasNote(b []byte, order binary.ByteOrder, name string, typ uint32) bool {
	pad := func(n uint32) int { return int((uint64(n) + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, t := order.Uint32(b), order.Uint32(b[4:]), order.Uint32(b[8:])
		b = b[12:]
		nl, dl := pad(namesz), pad(descsz)
		if nl > len(b) || dl > len(b)-nl {
			return false
		}
		if t == typ && string(bytes.TrimRight(b[:namesz], "\x00")) == name {
			return true
		}
		b = b[nl+dl:]
	}
	return false
}
