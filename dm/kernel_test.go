// SPDX-License-Identifier: Apache-2.0

package dm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"
)

// needDM skips unless this kernel has device-mapper and we may use it. The
// host kernels of keel's test machines have none: qemu-tests'
// TestPackageTestsInVM runs this test in a VM.
func needDM(t *testing.T) {
	t.Helper()
	needRoot(t)
	if _, _, _, err := devmapper.GetVersion(); err != nil {
		t.Skipf("no device-mapper in this kernel (/dev/mapper/control): %v", err)
	}
}

func blockSize(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCreateKernel creates, reloads and removes a real device (the zero
// target, which needs no backing device) and its node.
func TestCreateKernel(t *testing.T) {
	needDM(t)
	name := fmt.Sprintf("keel-dmtest-%d", os.Getpid())
	uuid := UUID("TEST", "0011", name)
	devno, err := Create(name, uuid, ReadOnly, devmapper.ZeroTable{Length: 1 << 20})
	if err != nil {
		t.Fatal(err) // the zero target is dm-zero: a module on Debian's kernel
	}
	t.Cleanup(func() { _ = Remove(name) })
	info, err := devmapper.InfoByName(name)
	if err != nil || info.DevNo != devno || info.UUID != uuid || info.Flags&unix.DM_READONLY_FLAG == 0 {
		t.Fatalf("InfoByName = %+v, %v: want devno %#x, uuid %s, read-only", info, err, devno, uuid)
	}
	d := Dir(filepath.Join(t.TempDir(), "mapper"))
	path, err := d.MakeNode(name, devno)
	if err != nil {
		t.Fatal(err)
	}
	if n := blockSize(t, path); n != 1<<20 {
		t.Errorf("%s is %d bytes, want 1 MiB", path, n)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, make([]byte, 1<<20)) {
		t.Errorf("reading %s: %d bytes, %v: want 1 MiB of zeros", path, len(b), err)
	}

	// A name in use is refused, and the device holding it is left alone.
	_, err = Create(name, "", 0, devmapper.ZeroTable{Length: 4096})
	if err == nil || err.Error() != "device-mapper name "+name+" is already in use" {
		t.Errorf("second Create: %v, want the name refused", err)
	}
	if _, err := devmapper.InfoByName(name); err != nil {
		t.Fatalf("the first device is gone after the refused Create: %v", err)
	}

	if err := Reload(name, ReadOnly, devmapper.ZeroTable{Length: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	if n := blockSize(t, path); n != 2<<20 {
		t.Errorf("after Reload %s is %d bytes, want 2 MiB", path, n)
	}
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := devmapper.InfoByName(name); err == nil {
		t.Error("device still there after Remove")
	}
	if err := d.RemoveNode(name); err != nil {
		t.Error(err)
	}
}

// TestCreateKernelCleansUp: a table the kernel refuses leaves no device.
func TestCreateKernelCleansUp(t *testing.T) {
	needDM(t)
	name := fmt.Sprintf("keel-dmtest-bad-%d", os.Getpid())
	table := devmapper.LinearTable{Length: 1 << 20, BackendDevice: "/nonexistent", BackendOffset: 0}
	_, err := Create(name, "", 0, table)
	if err == nil || !strings.HasPrefix(err.Error(), "loading table: ") {
		t.Errorf("Create over a missing device: %v, want a table load error", err)
	}
	if _, err := devmapper.InfoByName(name); err == nil {
		_ = Remove(name)
		t.Error("device left behind after a failed Create")
	}
}
