package unlock

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   int
		err    string
	}{
		{header: "LUKS\xba\xbe\x00\x02", want: 2},
		{header: "LUKS\xba\xbe\x00\x01rest", want: 1},
		{header: "LUKS\xba\xbe\x00\x03", err: "version 3, expected 1 or 2"},
		{header: "LUKS\xba\xbe", err: "no LUKS header"},
		{header: "hsqs\x00\x00\x00\x00", err: "no LUKS header"},
		{header: "", err: "no LUKS header"},
	} {
		got, err := Version([]byte(tc.header))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.header, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v", tc.header, got, err)
		}
	}
	if !IsLUKS([]byte("LUKS\xba\xbe")) || IsLUKS([]byte("LUKS")) || IsLUKS(nil) {
		t.Error("IsLUKS")
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2")
	if err := os.WriteFile(v2, []byte("LUKS\xba\xbe\x00\x02"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Describe("data", v2); got != "data (LUKS2 "+v2+")" {
		t.Errorf("got %q", got)
	}
	if got := Describe("data", "/nonexistent"); got != "data (LUKS /nonexistent)" {
		t.Errorf("got %q", got)
	}
}

func FuzzVersion(f *testing.F) {
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Add([]byte("LUKS\xba\xbe\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Version(b)
		if err == nil && (v < 1 || v > 2 || !IsLUKS(b)) {
			t.Fatalf("version %d accepted for %q", v, b)
		}
	})
}

// FuzzReadHeader feeds damaged headers to luks.go through readHeader and
// unseal: whatever the bytes, the result is an error, never a panic. Fuzz
// it with -fuzzminimizetime=0: minimizing inputs that make luks.go leak
// descriptors is very slow.
func FuzzReadHeader(f *testing.F) {
	f.Add(append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 600)...))
	f.Add(append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 600)...))
	f.Add([]byte("LUKS\xba\xbe\x00\x02\x00\x00\x00\x00\x00\x00\x40\x00"))
	dir := f.TempDir()
	leaks := 0
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "hdr")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := readHeader(p)
		if err != nil {
			// luks.Open leaks its *os.File on a bad LUKS2 header; the
			// file's finalizer closes it, so let the collector run now and
			// then, before the fuzzer runs out of descriptors.
			if v, _ := Version(b); v == 2 {
				if leaks++; leaks%100 == 0 {
					runtime.GC()
				}
			}
			return
		}
		defer d.Close()
		_, _ = unseal(d, Key{Secret: []byte("x"), Kind: Passphrase})
	})
}
