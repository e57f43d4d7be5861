// SPDX-License-Identifier: Apache-2.0

package dm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"keel-root-a", "keel-data", "x", strings.Repeat("n", unix.DM_NAME_LEN-1)} {
		if err := CheckName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "a b", "a\tb", "a\nb", strings.Repeat("n", unix.DM_NAME_LEN)} {
		err := CheckName(name)
		if err == nil || !strings.Contains(err.Error(), "must be 1-127 characters without '/' or white space") {
			t.Errorf("%q: err = %v", name, err)
		}
	}
}

func TestUUID(t *testing.T) {
	if got := UUID("VERITY", "0011", "keel-root-a"); got != "CRYPT-VERITY-0011-keel-root-a" {
		t.Errorf("got %q", got)
	}
	long := UUID("LUKS2", strings.Repeat("a", 32), strings.Repeat("n", 127))
	if len(long) != unix.DM_UUID_LEN-1 || !strings.HasPrefix(long, "CRYPT-LUKS2-aaaa") {
		t.Errorf("got %q (%d bytes), want the first %d bytes", long, len(long), unix.DM_UUID_LEN-1)
	}
}

func TestDirPath(t *testing.T) {
	if got := Dir("").Path("keel-data"); got != "/dev/mapper/keel-data" {
		t.Errorf("default dir: %s", got)
	}
	if got := Dir("/tmp/m").Path("x"); got != "/tmp/m/x" {
		t.Errorf("got %s", got)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make device nodes")
	}
}

func TestMakeNode(t *testing.T) {
	needRoot(t)
	d := Dir(filepath.Join(t.TempDir(), "mapper")) // made by MakeNode
	devno := unix.Mkdev(7, 250)
	path, err := d.MakeNode("keel-root-a", devno)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != devno {
		t.Fatalf("node %s: mode %o rdev %d, %v", path, st.Mode, st.Rdev, err)
	}
	if _, err := d.MakeNode("keel-root-a", devno); err != nil {
		t.Errorf("the same node again: %v", err)
	}
	_, err = d.MakeNode("keel-root-a", unix.Mkdev(7, 251))
	if want := path + " exists and is not block device 7:251"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("another device: err = %v, want %q", err, want)
	}
	if err := os.WriteFile(d.Path("file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.MakeNode("file", devno); err == nil || !strings.Contains(err.Error(), "is not block device 7:250") {
		t.Errorf("a regular file: err = %v", err)
	}
	if err := d.RemoveNode("keel-root-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("node still there: %v", err)
	}
	if err := d.RemoveNode("keel-root-a"); err != nil {
		t.Errorf("a missing node: %v", err)
	}
}

// FuzzCheckName: an accepted name stays one entry of the node directory,
// and its UUID fits the kernel's field.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"keel-root-a", "..", "a/b", "", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if len(UUID("LUKS2", name, name)) >= unix.DM_UUID_LEN {
			t.Fatalf("UUID of %q too long", name)
		}
		if CheckName(name) != nil {
			return
		}
		if p := Dir("/d").Path(name); filepath.Dir(p) != "/d" || filepath.Base(p) != name {
			t.Fatalf("name %q gives node %s outside /d", name, p)
		}
	})
}
