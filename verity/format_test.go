// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFormatMatchesVeritysetup compares the whole hash device and the root
// hash with what `veritysetup format` writes for the same data and salt.
func TestFormatMatchesVeritysetup(t *testing.T) {
	needTool(t, "veritysetup")
	salt := randomBytes(32, 7)
	const blk = 4096
	tests := []struct {
		name string
		size int64
		p    Params // DataBlocks is filled in from size
	}{
		{"1 block", blk, Params{Salt: salt}},
		{"127 blocks", 127 * blk, Params{Salt: salt}},
		{"128 blocks", 128 * blk, Params{Salt: salt}},
		{"129 blocks", 129 * blk, Params{Salt: salt}},
		{"128*128+1 blocks", (128*128 + 1) * blk, Params{Salt: salt}},
		{"3 MiB", 3 << 20, Params{Salt: salt}},
		{"10000 bytes", 10000, Params{Salt: salt}},
		{"129 blocks and 100 bytes", 129*blk + 100, Params{Salt: salt}},
		{"sha512 3 levels", (64*64 + 1) * blk, Params{HashAlg: "sha512", Salt: salt}},
		{"sha1", 300 * blk, Params{HashAlg: "sha1", Salt: salt}},
		{"sha384", 300 * blk, Params{HashAlg: "sha384", Salt: salt}},
		{"no salt", 200 * blk, Params{}},
		{"1-byte salt", 200 * blk, Params{Salt: []byte{0xa5}}},
		{"256-byte salt", 200 * blk, Params{Salt: randomBytes(256, 8)}},
		{"512/1024 blocks", 1000 * 512, Params{DataBlockSize: 512, HashBlockSize: 1024, Salt: salt}},
		{"8192/4096 blocks", 100 * 8192, Params{DataBlockSize: 8192, Salt: salt}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := randomBytes(tc.size, uint64(i))
			dataPath := writeFile(t, dir, "data.img", data)
			p := tc.p
			p.UUID = testUUID
			p.DataBlocks = DataBlocksFor(tc.size, p)
			wantRoot := veritysetupFormat(t, dataPath, filepath.Join(dir, "hash.img"), veritysetupArgs(p)...)
			want, err := os.ReadFile(filepath.Join(dir, "hash.img"))
			if err != nil {
				t.Fatal(err)
			}
			got, root := format(t, data, p)
			if !bytes.Equal(root, wantRoot) {
				t.Errorf("root hash %x, veritysetup %x", root, wantRoot)
			}
			compareDevices(t, got, want)
			if n := HashDeviceSize(p); n != int64(len(want)) {
				t.Errorf("HashDeviceSize = %d, veritysetup wrote %d", n, len(want))
			}
			ours := writeFile(t, dir, "ours.img", got)
			args := append([]string{"verify", dataPath, ours, hex.EncodeToString(root)}, veritysetupArgs(p)...)
			if out, err := veritysetup(t, args...); err != nil {
				t.Errorf("veritysetup %q rejects Format's output: %v\n%s", args, err, out)
			}
		})
	}
}

// veritysetupArgs spells p for veritysetup.
func veritysetupArgs(p Params) []string {
	p = p.WithDefaults()
	return []string{
		"--hash=" + p.HashAlg,
		fmt.Sprintf("--data-block-size=%d", p.DataBlockSize),
		fmt.Sprintf("--hash-block-size=%d", p.HashBlockSize),
		"--salt=" + hexOrDash(p.Salt),
	}
}

// compareDevices reports the first differing byte of two hash devices.
func compareDevices(t *testing.T, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("Format wrote %d bytes, veritysetup %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("first difference at byte %d: Format %#02x, veritysetup %#02x", i, got[i], want[i])
			return
		}
	}
}

// TestSmallerThanOneBlock checks that a data device shorter than one block
// is refused, as veritysetup refuses it.
func TestSmallerThanOneBlock(t *testing.T) {
	p := Params{UUID: testUUID}
	p.DataBlocks = DataBlocksFor(100, p)
	if p.DataBlocks != 0 {
		t.Fatalf("DataBlocksFor(100) = %d, want 0", p.DataBlocks)
	}
	_, err := Format(bytes.NewReader(make([]byte, 100)), p, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "0 data blocks") {
		t.Errorf("Format of 100 bytes: err %v, want 0 data blocks", err)
	}
	needTool(t, "veritysetup")
	dir := t.TempDir()
	data := writeFile(t, dir, "data.img", make([]byte, 100))
	if out, err := veritysetup(t, "format", data, filepath.Join(dir, "hash.img")); err == nil {
		t.Errorf("veritysetup accepted a 100-byte data device:\n%s", out)
	}
}

// TestFormatShortData checks that data shorter than DataBlocks fails before hashing.
func TestFormatShortData(t *testing.T) {
	p := Params{DataBlocks: 10}
	_, err := Format(bytes.NewReader(make([]byte, 9*4096+5)), p, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "reading data blocks 9-9") {
		t.Errorf("err %v, want it to name data block 9", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestFormatWriteError(t *testing.T) {
	_, err := Format(bytes.NewReader(make([]byte, 4096)), Params{DataBlocks: 1}, failWriter{})
	if err == nil || !strings.Contains(err.Error(), "writing superblock") {
		t.Errorf("err %v, want writing superblock", err)
	}
}
