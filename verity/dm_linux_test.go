// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/internal/looptest"
)

// needRoot skips tests that make device nodes or loop devices.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make device nodes and loop devices")
	}
}

// attachLoop attaches file to a free loop device, read-only.
func attachLoop(t *testing.T, file string) string { return looptest.Attach(t, file, true) }

// freeLoop is the path of a loop device nobody uses.
func freeLoop(t *testing.T) string { return looptest.Free(t) }

func devno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Rdev
}

// fakeDM hands out a fixed device number instead of creating a dm device.
type fakeDM struct {
	devno     uint64
	err       error
	reloadErr error
	created   []string // name, uuid and table of each device created
	reloaded  []string // name and table of each reload
	removed   []string
}

func (f *fakeDM) CreateVerity(name, uuid string, t Target) (uint64, error) {
	table, err := t.Table()
	if err != nil {
		return 0, err
	}
	f.created = append(f.created, name+" "+uuid+" "+table)
	return f.devno, f.err
}

func (f *fakeDM) ReloadVerity(name string, t Target) error {
	table, err := t.Table()
	if err != nil {
		return err
	}
	f.reloaded = append(f.reloaded, name+" "+table)
	return f.reloadErr
}

func (f *fakeDM) Remove(name string) error {
	f.removed = append(f.removed, name)
	return nil
}

func testTarget(name string) Target {
	return Target{Name: name, DataDev: "/dev/data", HashDev: "/dev/hash",
		Params: Params{DataBlocks: 4, UUID: testUUID}, RootHash: make([]byte, 32)}
}

// TestOpenerNodes runs Open and Close with a fake device-mapper whose
// "verity device" is a loop device over known data.
func TestOpenerNodes(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	data := randomBytes(4*4096, 9)
	loop := attachLoop(t, writeFile(t, dir, "data.img", data))
	dm := &fakeDM{devno: devno(t, loop)}
	o := Opener{DevDir: filepath.Join(dir, "mapper"), DM: dm}
	path, err := o.Open(testTarget("keel-root-a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "mapper", "keel-root-a"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	if got := devno(t, path); got != dm.devno {
		t.Errorf("node is device %#x, want %#x", got, dm.devno)
	}
	// The first read runs without options, so that a bad root is an EIO, not a reboot.
	const table = "1 /dev/data /dev/hash 4096 4096 4 1 sha256 0000000000000000000000000000000000000000000000000000000000000000 -"
	if want := []string{"keel-root-a CRYPT-VERITY-123456789abcdef01122334455667788-keel-root-a " + table}; !slices.Equal(dm.created, want) {
		t.Errorf("created %q, want %q", dm.created, want)
	}
	if want := []string{"keel-root-a " + table + " 1 restart_on_corruption"}; !slices.Equal(dm.reloaded, want) {
		t.Errorf("reloaded %q, want %q", dm.reloaded, want)
	}
	noOptions := testTarget("keel-root-a")
	noOptions.Options = []string{}
	if _, err := o.Open(noOptions); err != nil {
		t.Errorf("Open with the node already there: %v", err)
	}
	if len(dm.reloaded) != 1 {
		t.Errorf("reloaded a table without options: %q", dm.reloaded)
	}
	if err := o.Close("keel-root-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node still there after Close: %v", err)
	}
}

func TestOpenerErrors(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "keel-root-b")
	if err := unix.Mknod(other, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 250))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		target  Target
		dm      *fakeDM
		err     string
		removed []string
	}{
		{"bad name", testTarget("a/b"), &fakeDM{}, `device name "a/b" must be`, nil},
		{"bad table", Target{Name: "x"}, &fakeDM{}, "dm-verity x: verity: 0 data blocks", nil},
		{"create fails", testTarget("x"), &fakeDM{err: unix.EBUSY}, "dm-verity x: creating device over /dev/data and /dev/hash: device or resource busy", nil},
		{"node is another device", testTarget("keel-root-b"), &fakeDM{devno: unix.Mkdev(7, 251)}, "exists and is not block device 7:251", []string{"keel-root-b"}},
		{"reload fails", testTarget("keel-root-d"), &fakeDM{devno: devno(t, attachLoop(t, writeFile(t, dir, "data", make([]byte, 4096)))), reloadErr: unix.EINVAL},
			`dm-verity keel-root-d: loading table "1 /dev/data /dev/hash 4096 4096 4 1 sha256 00`, []string{"keel-root-d"}},
		{"first read fails", testTarget("keel-root-c"), &fakeDM{devno: devno(t, freeLoop(t))},
			"dm-verity keel-root-c: first read failed: root hash does not match the data (root hash 00000000…, data /dev/data, hash /dev/hash at byte 0): EOF",
			[]string{"keel-root-c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Opener{DevDir: dir, DM: tc.dm}.Open(tc.target)
			checkErr(t, err, tc.err)
			if !slices.Equal(tc.dm.removed, tc.removed) {
				t.Errorf("removed %q, want %q", tc.dm.removed, tc.removed)
			}
		})
	}
}

// needDMVerity skips unless the kernel can make dm-verity devices here.
func needDMVerity(t *testing.T) {
	t.Helper()
	needRoot(t)
	if out, err := exec.Command("modprobe", "dm-verity").CombinedOutput(); err != nil {
		t.Logf("modprobe dm-verity: %v: %s", err, bytes.TrimSpace(out))
	}
	if _, _, _, err := devmapper.GetVersion(); err != nil {
		t.Skipf("no device-mapper in this kernel (/dev/mapper/control): %v", err)
	}
}

// TestOpenKernel opens a real dm-verity device over loop devices, the hash
// device with a 4096-byte header before the superblock as keel's slots have.
func TestOpenKernel(t *testing.T) {
	needDMVerity(t)
	dir := t.TempDir()
	data := randomBytes(300*4096, 10)
	p := Params{DataBlocks: 300, Salt: []byte("keel"), UUID: testUUID}
	hash, root := format(t, data, p)
	hash = append(make([]byte, 4096), hash...)
	target := Target{
		Name:    fmt.Sprintf("keel-test-%d", os.Getpid()),
		DataDev: attachLoop(t, writeFile(t, dir, "data.img", data)),
		HashDev: attachLoop(t, writeFile(t, dir, "hash.img", hash)), HashOffset: 4096,
		Params: p, RootHash: root,
	}
	o := Opener{DevDir: filepath.Join(dir, "mapper")}
	path, err := o.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if cerr := o.Close(target.Name); cerr != nil {
		t.Error(cerr)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading %s: %v (%d bytes, equal %v)", path, err, len(got), bytes.Equal(got, data))
	}

	target.RootHash = slices.Clone(root)
	target.RootHash[0] ^= 1
	_, err = o.Open(target)
	want := "dm-verity " + target.Name + ": first read failed: root hash does not match the data"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, unix.EIO) {
		// Under restart_on_corruption the machine would have rebooted instead.
		t.Fatalf("Open with a wrong root hash: %v, want %q and EIO", err, want)
	}
	t.Logf("wrong root hash: %v", err)
	if _, err := devmapper.InfoByName(target.Name); err == nil {
		t.Errorf("device %s left behind after a failed Open", target.Name)
	}
}
