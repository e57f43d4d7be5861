// SPDX-License-Identifier: Apache-2.0

package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/klauspost/compress/zstd"
)

// Compression is how an initramfs is compressed.
type Compression string

// Supported compressions. The Debian kernel decompresses all of them.
const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
)

// ParseCompression checks a --compress value.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Zstd, Gzip, None:
		return c, nil
	}
	return "", fmt.Errorf("compression %q, expected zstd, gzip or none", s)
}

// zstdWindow is the encoder's window. The kernel's streaming decompressor
// allocates a buffer of this size while unpacking; 8 MiB is what `zstd -19`
// uses too.
const zstdWindow = 8 << 20

// NewWriter compresses what is written to it onto w; Close flushes it but
// does not close w.
func NewWriter(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		// One goroutine, so the output depends only on the input; the
		// streaming encoder writes a single frame without a dictionary.
		// The level is measured (BENCHMARKS.md): "better" makes the
		// generic image 1.1% smaller than "default" (4.18 MB against
		// 4.22 MB: what brings it under 4 MiB) for about 0.03 s more CPU
		// on the small image and 0.1 s on the generic one; "best" would
		// save 8% more but takes 0.8 s on the generic image's 11 MB. The
		// kernel unpacks them all equally fast: zstd decodes at the same
		// speed whatever the level, and the unpacked size is what costs
		// boot time. The init itself is not compressed here when its
		// precompressed segment is found (segment.go: zstd -19).
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow))
	case Gzip:
		// The gzip header carries no name and a zero mtime by default.
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("compression %q, expected zstd, gzip or none", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Detect names the compression of an image from its first bytes.
func Detect(head []byte) (string, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz", nil
	case bytes.HasPrefix(head, []byte(Magic)):
		return "none", nil
	}
	return "", fmt.Errorf("unknown image format: starts with %x, expected zstd, gzip, xz or newc (%s)", head, Magic)
}

// maxZstdWindow bounds what a zstd frame may ask the decoder to allocate.
const maxZstdWindow = 128 << 20

// Decompress returns the uncompressed newc stream of an image in any of the
// formats Detect knows. xz is read through the xz tool, for images made by
// other tools; keel itself never writes xz. Close releases the decoder.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading image header: %w", err)
	}
	kind, err := Detect(head)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "zstd":
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return d.IOReadCloser(), nil
	case "gzip":
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return g, nil
	case "xz":
		return xzReader(br)
	}
	return io.NopCloser(br), nil
}

// xzReader runs `xz -dc` over r.
func xzReader(r io.Reader) (io.ReadCloser, error) {
	cmd := exec.Command("xz", "-dc")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("xz image needs the xz tool: %w", err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd, stderr: &stderr}, nil
}

type cmdReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (c *cmdReader) Close() error {
	// Drain so xz can exit even if the caller stopped at the trailer.
	_, _ = io.Copy(io.Discard, c.ReadCloser)
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("xz -dc: %w: %s", err, bytes.TrimSpace(c.stderr.Bytes()))
	}
	return nil
}
