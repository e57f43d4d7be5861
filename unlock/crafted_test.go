package unlock

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// craftLUKS2 writes a LUKS2 header of 16 KiB with the given JSON area
// content and a valid checksum unless badSum.
func craftLUKS2(t *testing.T, json string, badSum bool) string {
	t.Helper()
	const size = 16384
	h := make([]byte, size)
	copy(h, Magic)
	binary.BigEndian.PutUint16(h[6:], 2)
	binary.BigEndian.PutUint64(h[8:], size)
	copy(h[72:], "sha256")
	copy(h[4096:], json)
	sum := sha256.Sum256(h)
	copy(h[448:], sum[:])
	if badSum {
		h[448] ^= 1
	}
	p := filepath.Join(t.TempDir(), "luks")
	if err := os.WriteFile(p, h, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenDamagedHeaders(t *testing.T) {
	noNUL := strings.Repeat(" ", 16384-4096)
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("LUKS\xba\xbe\x00\x02"), 0o600); err != nil {
		t.Fatal(err)
	}
	luks1 := filepath.Join(t.TempDir(), "luks1")
	if err := os.WriteFile(luks1, append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 1024)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dev, err string
	}{
		{name: "json without NUL", dev: craftLUKS2(t, noNUL, false), err: "malformed LUKS header"},
		{name: "bad checksum", dev: craftLUKS2(t, "{}", true), err: "Invalid header checksum"},
		{name: "bad json", dev: craftLUKS2(t, "{", false), err: "reading LUKS header"},
		{name: "no key slots", dev: craftLUKS2(t, `{"keyslots":{},"digests":{},"segments":{},"config":{}}`, false), err: "no key slot matches the key file: the header has no active key slot"},
		{name: "truncated", dev: short, err: "reading LUKS header"},
		{name: "luks1", dev: luks1, err: "LUKS1 is not supported, expected LUKS2"},
		{name: "not luks", dev: "/dev/null", err: "reading LUKS header"},
	} {
		var fm fakeMapper
		o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: &fm}
		_, err := o.Open(tc.dev, "keel-data", Key{Secret: []byte("k"), Kind: KeyFile})
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "data (") {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
		if tc.name == "no key slots" && !errors.Is(err, ErrNoKeySlot) {
			t.Errorf("%s: not ErrNoKeySlot", tc.name)
		}
		if len(fm.created) != 0 {
			t.Errorf("%s: mapped %v", tc.name, fm.created)
		}
	}
}
