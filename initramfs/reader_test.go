// SPDX-License-Identifier: Apache-2.0

package initramfs

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderErrors(t *testing.T) {
	good := write(t, Archive{"a": Bytes([]byte("hello"), 0o644)}, 0)
	tests := []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "ends before its trailer"},
		{"bad magic", append([]byte("070707"), good[6:]...), "expected \"070701\""},
		{"bad hex", append(append([]byte{}, good[:6]...), append([]byte("zzzzzzzz"), good[14:]...)...), "not 8 hex digits"},
		{"truncated body", good[:headerLen+4+2], "truncated"},
		{"no trailer", good[:pad4(headerLen+2)+8], "ends before its trailer"},
		{"huge name", bytes.Replace(good[:headerLen], []byte("00000002"), []byte("7fffffff"), 1), "name size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAll(bytes.NewReader(tt.img))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadAll = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	img := write(t, sample(t), 0)
	for _, c := range []Compression{Zstd, Gzip, None} {
		t.Run(string(c), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(img); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if kind, err := Detect(buf.Bytes()); err != nil || kind != string(c) {
				t.Fatalf("Detect = %q, %v; want %q", kind, err, c)
			}
			r, err := Decompress(&buf)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, img) {
				t.Fatalf("decompressed %d bytes (%v), want the %d-byte archive", len(got), err, len(img))
			}
		})
	}
}

func TestDetectUnknown(t *testing.T) {
	if _, err := Detect([]byte("hello")); err == nil || !strings.Contains(err.Error(), "unknown image format") {
		t.Fatalf("Detect(hello) = %v", err)
	}
	if _, err := ParseCompression("lz4"); err == nil {
		t.Fatal("ParseCompression(lz4) succeeded")
	}
}

// FuzzReader feeds arbitrary bytes to the newc reader: it must return
// records or an error, never panic, and never allocate more than the input
// can justify.
func FuzzReader(f *testing.F) {
	var seed bytes.Buffer
	if err := (Archive{"a": Bytes([]byte("x"), 0o644), "b": Symlink("a")}).Write(&seed, WriteOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add([]byte(Magic + strings.Repeat("f", 104)))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ReadAll(bytes.NewReader(b))
		if err != nil && errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("bare EOF escaped: %v", err)
		}
		total := 0
		for _, r := range recs {
			total += len(r.Body) + len(r.Name)
		}
		if total > len(b) {
			t.Fatalf("records hold %d bytes from a %d-byte input", total, len(b))
		}
	})
}

// TestConcatenatedArchives: records of archives written one after another
// (with the zero padding tools add) come back in order, as the kernel
// unpacks them; anything else after a trailer is an error.
func TestConcatenatedArchives(t *testing.T) {
	var buf bytes.Buffer
	if err := (Archive{"init": Bytes([]byte("first"), 0o755)}).Write(&buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 512-buf.Len()%512))
	if err := (Archive{"etc/x": Bytes([]byte("second"), 0o644)}).Write(&buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadAll(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "init etc etc/x" {
		t.Errorf("records %v, want init etc etc/x", names)
	}
	for name, tail := range map[string][]byte{
		"junk":      []byte("garbage!"),
		"unaligned": append([]byte{0}, []byte(Magic)...),
	} {
		b := append(append([]byte(nil), buf.Bytes()...), tail...)
		if _, err := ReadAll(bytes.NewReader(b)); err == nil {
			t.Errorf("%s after the trailer: no error", name)
		}
	}
}
