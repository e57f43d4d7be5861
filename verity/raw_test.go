// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckPath: the path of data block 0 read from intact devices matches
// the root hash (nil: an EIO through dm-verity was not the image's); a
// changed byte on that path, or another root hash, is a mismatch (the
// image's); a block that cannot be read fails naming the device and where,
// and is no mismatch (the disk's). A change off the path is not seen: it
// reads a few blocks only.
func TestCheckPath(t *testing.T) {
	dir := t.TempDir()
	const blocks = 300 // two levels of 4 KiB sha256 blocks: 3, then the root block
	data := randomBytes(blocks*4096, 7)
	p := Params{DataBlocks: blocks, Salt: []byte("salt")}
	hash, root := format(t, data, p)
	dataDev := writeFile(t, dir, "data", data)
	// The tree after a 4 KiB header, as a slot's verity partition holds it.
	hashDev := writeFile(t, dir, "hash", append(make([]byte, 4096), hash...))
	tg := Target{Name: "keel-root-a", DataDev: dataDev, HashDev: hashDev, HashOffset: 4096, RootHash: root, Params: p}
	if err := CheckPath(tg); err != nil {
		t.Fatalf("CheckPath of intact devices: %v", err)
	}
	changed := func(name string, b []byte, at int) string {
		c := bytes.Clone(b)
		c[at] ^= 1
		return writeFile(t, dir, name, c)
	}
	tree := append(make([]byte, 4096), hash...)
	// The tree starts after the header and the superblock's block: the top
	// level (one block) at byte 8192, level 0 (three blocks) after it.
	const top, level0 = 8192, 12288
	short := writeFile(t, dir, "short", make([]byte, 4096+4096+100))
	for name, tc := range map[string]struct {
		data, hash string
		root       []byte
		mismatch   bool
		want       string // in the error; "" for nil
	}{
		"data block 0 changed":    {changed("data0", data, 100), hashDev, root, true, "data block 0 (" + dir + "/data0 byte 0) does not match level 0"},
		"level 0 block 0 changed": {dataDev, changed("l0", tree, level0+7), root, true, "data block 0 (" + dataDev + " byte 0) does not match level 0"},
		"level 0 block 0's tail":  {dataDev, changed("l0tail", tree, level0+4000), root, true, "level 0 hash block 0 (" + dir + "/l0tail byte 12288) does not match level 1"},
		"top block changed":       {dataDev, changed("top", tree, top+64), root, true, "level 1 hash block 0 (" + dir + "/top byte 8192) hashes to"},
		"another root hash":       {dataDev, hashDev, bytes.Repeat([]byte{1}, 32), true, "not the root hash"},
		"data block 5 changed":    {changed("data5", data, 5*4096), hashDev, root, false, ""},
		"data gone":               {filepath.Join(dir, "none"), hashDev, root, false, "none: no such file"},
		"tree short":              {dataDev, short, root, false, "reading 4096 bytes of " + short + " at byte"},
	} {
		tc2 := tg
		tc2.DataDev, tc2.HashDev, tc2.RootHash = tc.data, tc.hash, tc.root
		err := CheckPath(tc2)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: CheckPath = %v, want nil", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrMismatch) != tc.mismatch {
			t.Errorf("%s: CheckPath = %v, want %q, a mismatch: %v", name, err, tc.want, tc.mismatch)
		}
	}
	// With pages of 16 KiB (arm64), dm-verity's first read checks data
	// blocks 0-3: a change in block 3 is the image's, one in block 4 is
	// not seen.
	tg3 := tg
	tg3.DataDev = changed("data3", data, 3*4096+9)
	if err := checkFirst(tg3, 16<<10); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "data block 3 (") {
		t.Errorf("16 KiB pages, data block 3 changed: %v, want a mismatch naming data block 3", err)
	}
	tg3.DataDev = changed("data4", data, 4*4096+9)
	if err := checkFirst(tg3, 16<<10); err != nil {
		t.Errorf("16 KiB pages, data block 4 changed: %v, want nil", err)
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

// FuzzCheckPath: over any data and salt, CheckPath passes intact devices,
// and after one byte is changed anywhere on them it reports a mismatch
// exactly when that byte is on the path of a data block of the first page
// (the block, or a hash block above it), and nil otherwise; never another
// error.
func FuzzCheckPath(f *testing.F) {
	f.Add([]byte("keel"), uint16(3), uint32(0), []byte("salt"))
	f.Add([]byte{1, 2, 3}, uint16(150), uint32(100000), []byte{})
	f.Add([]byte{}, uint16(1), uint32(600), []byte("s"))
	f.Fuzz(func(t *testing.T, seed []byte, blocks uint16, flip uint32, salt []byte) {
		const bs = 512
		p := Params{DataBlocks: uint64(blocks%300) + 1, DataBlockSize: bs, HashBlockSize: bs, Salt: salt}
		g, err := p.WithDefaults().geometry()
		if err != nil {
			return // a salt too long, say
		}
		data := make([]byte, int(p.DataBlocks)*bs)
		for i := range data {
			data[i] = byte(i / 7)
		}
		copy(data, seed)
		hash, root := format(t, data, p)
		dir := t.TempDir()
		tg := Target{Name: "x", DataDev: writeFile(t, dir, "data", data), HashDev: writeFile(t, dir, "hash", hash), RootHash: root, Params: p}
		if err := CheckPath(tg); err != nil {
			t.Fatalf("intact devices: %v", err)
		}
		at := int(flip % uint32(len(data)+len(hash)))
		first := min(max(os.Getpagesize()/bs, 1), int(p.DataBlocks)) // data blocks checked
		onPath := at < first*bs
		if at < len(data) {
			data[at] ^= 0x80
			tg.DataDev = writeFile(t, dir, "data2", data)
		} else {
			h := at - len(data)
			hash[h] ^= 0x80
			tg.HashDev = writeFile(t, dir, "hash2", hash)
			start := hashStartBlock(0, bs)
			last := first - 1 // the last block of the level below on a path
			for i := range g.levels {
				last /= g.perBlock
				b := int(start+g.levelStart(i)) * bs
				onPath = onPath || h >= b && h < b+(last+1)*bs
			}
		}
		err = CheckPath(tg)
		if err != nil && !errors.Is(err, ErrMismatch) {
			t.Fatalf("byte %d changed: %v, want nil or a mismatch", at, err)
		}
		if (err != nil) != onPath {
			t.Fatalf("byte %d changed (on the path: %v): %v", at, onPath, err)
		}
	})
}
