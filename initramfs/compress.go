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

// BestAbove is the size of an uncompressed archive above which NewWriterFor
// compresses zstd at the encoder's "best" level rather than "better".
const BestAbove = 4 << 20

// NewWriter compresses what is written to it onto w at the level of a small
// archive; Close flushes it but does not close w.
func NewWriter(w io.Writer, c Compression) (io.WriteCloser, error) {
	return NewWriterFor(w, c, 0)
}

// NewWriterFor is NewWriter for an archive of size bytes, uncompressed.
func NewWriterFor(w io.Writer, c Compression, size int) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		// One goroutine, so the output depends only on the input; the
		// streaming encoder writes a single frame without a dictionary.
		// The level is measured (BENCHMARKS.md): "better" makes the
		// generic image 1.1% smaller than "default" for about 0.03 s
		// more CPU on the small image; "best" makes the generic image's
		// 11.4 MB of modules 9% smaller than "better" (2.62 MB against
		// 2.89 MB: what keeps the generic image under 4 MiB) in 0.96 s
		// instead of 0.23 s, and would take the small image's build past
		// 0.1 s. So an archive above BestAbove (the generic image, the
		// demo) gets "best", a small one "better": the cost of a level is
		// paid once per build, its size at every boot. The kernel unpacks
		// both equally fast: zstd decodes at the same speed whatever the
		// level. The init itself is not compressed here when its
		// precompressed segment is found (segment.go: zstd -19).
		level := zstd.SpeedBetterCompression
		if size > BestAbove {
			level = zstd.SpeedBestCompression
		}
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(level),
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
