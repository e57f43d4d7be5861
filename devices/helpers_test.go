// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// needTool skips the test when an external tool is missing; they are
// installed here and in CI, so a skip there is a setup bug.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

func run(t testing.TB, stdin string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// sparseFile makes an empty file of size bytes in dir.
func sparseFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// sfdiskImage partitions a new 64 MiB image with an sfdisk script.
func sfdiskImage(t testing.TB, dir, script string) string {
	t.Helper()
	needTool(t, "sfdisk")
	p := sparseFile(t, dir, "disk.img", 64<<20)
	run(t, script, "sfdisk", "--quiet", p)
	return p
}

// blkid returns blkid's low-level probe of a file as KEY=VALUE pairs.
func blkid(t testing.TB, path string) map[string]string {
	t.Helper()
	needTool(t, "blkid")
	out := run(t, "", "blkid", "-p", "-o", "export", path)
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// gptEntry is a partition for buildGPT.
type gptEntry struct {
	index     int // 1-based slot in the array
	typ, uuid string
	name      string
	first     uint64
	last      uint64
}

// buildGPT synthesizes a disk with a GPT header at LBA 1 and the entry
// array at LBA 2, so edge cases (CRCs, sizes, 4Kn) need no tools.
func buildGPT(sector, numEntries, entrySize int, entries []gptEntry) []byte {
	arr := make([]byte, numEntries*entrySize)
	for _, e := range entries {
		b := arr[(e.index-1)*entrySize:]
		copy(b[0:], encodeGUID(e.typ))
		copy(b[16:], encodeGUID(e.uuid))
		binary.LittleEndian.PutUint64(b[32:], e.first)
		binary.LittleEndian.PutUint64(b[40:], e.last)
		for i, u := range utf16.Encode([]rune(e.name)) {
			binary.LittleEndian.PutUint16(b[56+2*i:], u)
		}
	}
	disk := make([]byte, 2*sector+len(arr)+sector)
	h := disk[sector:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], uint32(numEntries))
	binary.LittleEndian.PutUint32(h[84:], uint32(entrySize))
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(arr))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	copy(disk[2*sector:], arr)
	return disk
}

// encodeGUID is the inverse of formatGUID: mixed-endian as GPT stores it.
func encodeGUID(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("test GUID " + s)
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b
}

// resign recomputes the header CRC after a test edited the header.
func resign(disk []byte, sector int) {
	h := disk[sector:]
	size := binary.LittleEndian.Uint32(h[12:])
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
