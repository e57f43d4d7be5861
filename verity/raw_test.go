// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadPath: the path of data block 0 reads from intact devices (a
// mismatch there is the image's), and fails, naming the device and where,
// when a block on it cannot be read (the disk's).
func TestReadPath(t *testing.T) {
	dir := t.TempDir()
	const blocks = 300 // two levels of 4 KiB sha256 blocks: 3, then the root block
	data := randomBytes(blocks*4096, 7)
	p := Params{DataBlocks: blocks, Salt: []byte("salt")}
	hash, _ := format(t, data, p)
	dataDev := writeFile(t, dir, "data", data)
	// The tree after a 4 KiB header, as a slot's verity partition holds it.
	hashDev := writeFile(t, dir, "hash", append(make([]byte, 4096), hash...))
	tg := Target{Name: "keel-root-a", DataDev: dataDev, HashDev: hashDev, HashOffset: 4096, Params: p}
	if err := ReadPath(tg); err != nil {
		t.Fatalf("ReadPath of intact devices: %v", err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, make([]byte, 4096+4096+100), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		t    Target
		want string
	}{
		"data gone":  {Target{Name: "x", DataDev: filepath.Join(dir, "none"), HashDev: hashDev, HashOffset: 4096, Params: p}, "none: no such file"},
		"tree short": {Target{Name: "x", DataDev: dataDev, HashDev: short, HashOffset: 4096, Params: p}, "reading 4096 bytes of " + short + " at byte"},
	} {
		if err := ReadPath(tc.t); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReadPath = %v, want %q", name, err, tc.want)
		}
	}
}

// TestReadAll: every data block and the whole tree read from intact
// devices; a device that ends early (a block that cannot be read) fails,
// naming the device and where, be it the last data block or the last hash
// block.
func TestReadAll(t *testing.T) {
	dir := t.TempDir()
	const blocks = 300 // 300 data blocks in 1 MiB chunks: two chunks
	data := randomBytes(blocks*4096, 8)
	p := Params{DataBlocks: blocks, Salt: []byte("salt")}
	hash, _ := format(t, data, p)
	dataDev := writeFile(t, dir, "data", data)
	hashDev := writeFile(t, dir, "hash", append(make([]byte, 4096), hash...))
	tg := Target{Name: "keel-root-a", DataDev: dataDev, HashDev: hashDev, HashOffset: 4096, Params: p}
	calls := 0
	if err := ReadAll(tg, func() { calls++ }); err != nil || calls != 3 {
		t.Fatalf("ReadAll of intact devices: %v, progress called %d times; want 3 (two chunks of data, one of tree)", err, calls)
	}
	calls = 0
	if err := ReadDevice(dataDev, func() { calls++ }); err != nil || calls != 2 {
		t.Fatalf("ReadDevice: %v, progress called %d times; want 2", err, calls)
	}
	if err := ReadDevice(filepath.Join(dir, "none"), nil); err == nil {
		t.Fatal("ReadDevice of a missing device: no error")
	}
	shortData := writeFile(t, dir, "short-data", data[:len(data)-1])
	shortHash := writeFile(t, dir, "short-hash", append(make([]byte, 4096), hash[:len(hash)-1]...))
	for name, tc := range map[string]struct {
		t    Target
		want string
	}{
		"last data byte":   {Target{Name: "x", DataDev: shortData, HashDev: hashDev, HashOffset: 4096, Params: p}, "of " + shortData + " at byte 1048576"},
		"last hash byte":   {Target{Name: "x", DataDev: dataDev, HashDev: shortHash, HashOffset: 4096, Params: p}, "of " + shortHash + " at byte 8192"},
		"hash device gone": {Target{Name: "x", DataDev: dataDev, HashDev: filepath.Join(dir, "none"), HashOffset: 4096, Params: p}, "none: no such file"},
	} {
		if err := ReadAll(tc.t, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReadAll = %v, want %q", name, err, tc.want)
		}
	}
}
