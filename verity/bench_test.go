// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkFormat hashes 64 MiB held in memory.
func BenchmarkFormat(b *testing.B) {
	const size = 64 << 20
	data := bytes.NewReader(randomBytes(size, 1))
	p := Params{DataBlocks: size / 4096, Salt: randomBytes(32, 2)}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := Format(data, p, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFile is a 256 MiB data file in the page cache, as veritysetup would
// find an image it formats right after building it.
func benchFile(b *testing.B) (string, Params) {
	const size = 256 << 20
	dir := b.TempDir()
	path := writeFile(b, dir, "data.img", randomBytes(size, 3))
	return path, Params{DataBlocks: size / 4096, Salt: randomBytes(32, 4), UUID: testUUID}
}

// BenchmarkFormatFile formats a 256 MiB file to a file, to set against
// BenchmarkVeritysetupFormat.
func BenchmarkFormatFile(b *testing.B) {
	path, p := benchFile(b)
	b.SetBytes(int64(p.DataBlocks) * 4096)
	for b.Loop() {
		data, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(filepath.Dir(path), "hash.img"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Format(data, p, out); err != nil {
			b.Fatal(err)
		}
		data.Close()
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVeritysetupFormat runs `veritysetup format` over the same file.
func BenchmarkVeritysetupFormat(b *testing.B) {
	needTool(b, "veritysetup")
	path, p := benchFile(b)
	b.SetBytes(int64(p.DataBlocks) * 4096)
	hash := filepath.Join(filepath.Dir(path), "hash.img")
	args := append([]string{"format", path, hash, "--uuid=" + FormatUUID(testUUID)}, veritysetupArgs(p)...)
	for b.Loop() {
		if out, err := exec.Command("veritysetup", args...).CombinedOutput(); err != nil {
			b.Fatalf("veritysetup: %v\n%s", err, out)
		}
	}
}
