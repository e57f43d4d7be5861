// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"crypto/aes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anatol/devmapper.go"
	"golang.org/x/crypto/xts"

	"github.com/keel-boot/keel/internal/looptest"
)

// TestMapKernel maps the LUKS2 volumes of testdata with the kernel's
// dm-crypt, without cryptsetup: what the kernel decrypts through keel's
// table (cipher, key, data offset, sector size, IVs) must be what the
// volume key decrypts in Go, both ways. The host kernels of keel's test
// machines have no device-mapper: qemu-tests' TestPackageTestsInVM runs
// this test in a VM.
func TestMapKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, _, _, err := devmapper.GetVersion(); err != nil {
		t.Skipf("no device-mapper in this kernel (/dev/mapper/control): %v", err)
	}
	for _, name := range []string{"argon2id", "pbkdf2-sha512"} {
		t.Run(name, func(t *testing.T) { testMapKernel(t, name) })
	}
}

func testMapKernel(t *testing.T, volume string) {
	img, key, volumeKey := testVolume(t, volume)
	file := filepath.Join(t.TempDir(), volume+".img")
	must(t, os.WriteFile(file, img, 0o600))
	loop := looptest.Attach(t, file, false)
	name := fmt.Sprintf("keel-unlock-%s-%d", volume, os.Getpid())
	o := Opener{Role: "data", DevDir: t.TempDir()}
	path, err := o.Open(loop, name, Key{Secret: key, Kind: KeyFile})
	if err != nil {
		t.Fatal(err) // names the dm_crypt, xts and ecb modules when they are missing
	}
	closed := false
	defer func() {
		if !closed {
			_ = o.Close(name)
		}
	}()

	// The same name again is refused and leaves the first mapping alone.
	if _, err := o.Open(loop, name, Key{Secret: key, Kind: KeyFile}); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("second Open as %s: %v, want the name refused", name, err)
	}

	// The volumes hold one 4 KiB sector at byte 163840 (testdata/make.sh).
	const offset, size = 163840, 4096
	c, err := xts.NewCipher(aes.NewCipher, volumeKey)
	must(t, err)
	sectorSize := map[string]int{"argon2id": 512, "pbkdf2-sha512": 4096}[volume]
	decrypt := func(b []byte) []byte {
		out := bytes.Clone(b)
		for at := 0; at < len(out); at += sectorSize {
			// plain64 IVs count 512-byte sectors.
			c.Decrypt(out[at:at+sectorSize], out[at:at+sectorSize], uint64(at/512))
		}
		return out
	}
	got, err := os.ReadFile(path)
	must(t, err)
	if want := decrypt(img[offset : offset+size]); !bytes.Equal(got, want) {
		t.Fatalf("the kernel decrypts %x…, the volume key %x…", got[:16], want[:16])
	}

	// Written through the mapping, read back raw and decrypted in Go.
	plain := bytes.Repeat([]byte("keel dm-crypt! "), size/15+1)[:size]
	must(t, os.WriteFile(path, plain, 0))
	must(t, o.Close(name))
	closed = true
	raw, err := os.ReadFile(file)
	must(t, err)
	if got := decrypt(raw[offset : offset+size]); !bytes.Equal(got, plain) {
		t.Errorf("written through dm-crypt, decrypted in Go: %q…", got[:32])
	}
	if _, err := devmapper.InfoByName(name); err == nil {
		t.Errorf("device %s left after Close", name)
	}
}
