// SPDX-License-Identifier: Apache-2.0

package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sample(t *testing.T) Archive {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("from disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := Archive{}
	adds := []struct {
		name string
		e    Entry
	}{
		{"/init", Bytes([]byte("#!init"), 0o755)},
		{"/etc/keel/initrd.json", Bytes([]byte("{}\n"), 0o644)},
		{"/bin/busybox", File(src, 0o755)},
		{"/bin/sh", Symlink("busybox")},
		{"/dev/console", CharDev(5, 1, 0o600)},
		{"/dev/vda", BlockDev(254, 0, 0o660)},
		{"/tmp", Dir(0o1777 | os.ModeSticky)},
		{"/empty", Bytes(nil, 0o644)},
	}
	for _, add := range adds {
		if err := a.Add(add.name, add.e); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func write(t *testing.T, a Archive, mtime uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := a.Write(&buf, WriteOptions{Mtime: mtime}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	img := write(t, sample(t), 1700000000)
	recs, err := ReadAll(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		mode     uint32
		body     string
		maj, min uint32
		nlink    uint32
	}{
		{"bin", TypeDir | 0o755, "", 0, 0, 2},
		{"bin/busybox", TypeRegular | 0o755, "from disk\n", 0, 0, 1},
		{"bin/sh", TypeSymlink | 0o777, "busybox", 0, 0, 1},
		{"dev", TypeDir | 0o755, "", 0, 0, 2},
		{"dev/console", TypeChar | 0o600, "", 5, 1, 1},
		{"dev/vda", TypeBlock | 0o660, "", 254, 0, 1},
		{"empty", TypeRegular | 0o644, "", 0, 0, 1},
		{"etc", TypeDir | 0o755, "", 0, 0, 2},
		{"etc/keel", TypeDir | 0o755, "", 0, 0, 2},
		{"etc/keel/initrd.json", TypeRegular | 0o644, "{}\n", 0, 0, 1},
		{"init", TypeRegular | 0o755, "#!init", 0, 0, 1},
		{"tmp", TypeDir | 0o1777, "", 0, 0, 2},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.Name != w.name || r.Mode != w.mode || string(r.Body) != w.body ||
			r.RdevMajor != w.maj || r.RdevMinor != w.min || r.Nlink != w.nlink {
			t.Errorf("record %d = %q mode %o body %q rdev %d:%d nlink %d, want %+v",
				i, r.Name, r.Mode, r.Body, r.RdevMajor, r.RdevMinor, r.Nlink, w)
		}
		if r.Ino != uint32(i+1) || r.Mtime != 1700000000 || r.UID != 0 || r.GID != 0 {
			t.Errorf("record %s: ino %d mtime %d uid %d gid %d", r.Name, r.Ino, r.Mtime, r.UID, r.GID)
		}
	}
	if len(img)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(img))
	}
}

func TestDeterministic(t *testing.T) {
	a, b := write(t, sample(t), 0), write(t, sample(t), 0)
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of the same archive differ")
	}
}

func TestAddErrors(t *testing.T) {
	tests := []struct {
		name    string
		first   Entry
		path    string
		second  Entry
		wantErr string
	}{
		{"conflict", Bytes([]byte("a"), 0o644), "/x", Bytes([]byte("b"), 0o644), "added twice"},
		{"dotdot", Dir(0o755), "/../etc", Dir(0o755), "leaves the archive root"},
		{"root", Dir(0o755), "/", Dir(0o755), "names the archive root"},
		{"nul", Dir(0o755), "/a\x00b", Dir(0o755), "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Archive{}
			_ = a.Add("/x", tt.first)
			err := a.Add(tt.path, tt.second)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add(%q) = %v, want error containing %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestSameDirTwice(t *testing.T) {
	a := Archive{}
	if err := a.Add("/dev", Dir(0o755)); err != nil {
		t.Fatal(err)
	}
	if err := a.Add("dev/", Dir(0o755)); err != nil {
		t.Fatalf("adding a directory twice: %v", err)
	}
}

func TestParentNotDir(t *testing.T) {
	a := Archive{}
	_ = a.Add("/bin", Bytes([]byte("x"), 0o644))
	_ = a.Add("/bin/sh", Symlink("busybox"))
	err := a.Write(&bytes.Buffer{}, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "/bin is needed as a directory") {
		t.Fatalf("Write = %v, want a parent-is-not-a-directory error", err)
	}
}

func TestMissingSourceFile(t *testing.T) {
	a := Archive{}
	_ = a.Add("/init", File("/nonexistent/init", 0o755))
	err := a.Write(&bytes.Buffer{}, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/init") {
		t.Fatalf("Write = %v, want an error naming the source", err)
	}
}

// TestGNUCpioReads checks that GNU cpio lists and extracts what we write,
// device numbers and symlinks included.
func TestGNUCpioReads(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	img := write(t, sample(t), 0)
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(img)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	for _, want := range []string{"crw-------", "5,   1", "dev/console", "brw-rw----", "254,   0",
		"lrwxrwxrwx", "bin/sh -> busybox", "drwxrwxrwt", "etc/keel/initrd.json"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -itv output lacks %q:\n%s", want, out)
		}
	}
	if os.Geteuid() != 0 {
		return // extracting device nodes needs root
	}
	dir := t.TempDir()
	cmd = exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin/sh")); err != nil || string(b) != "from disk\n" {
		t.Errorf("extracted bin/sh -> busybox reads %q, %v", b, err)
	}
}
