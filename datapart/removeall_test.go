// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lowFileLimit runs the rest of the test with an open-file limit of n, as
// PID 1's (4096) is low against a tree a user can nest.
func lowFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	low := syscall.Rlimit{Cur: n, Max: was.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was) })
}

// nest makes depth directories d/d/d… under dir, holding two descriptors
// at a time, with a file in every tenth; it returns nothing: the tree is
// deeper than a path can name.
func nest(t *testing.T, dir string, depth int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range depth {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(f)
		}
		child, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = child
	}
	unix.Close(fd)
}

// TestRemoveTreeDeeperThanTheFileLimit: a tree nested deeper than the
// open-file limit (a user's `mkdir a; cd a` 4,100 times in /tmp, on the
// persistent root) is removed. os.Root's RemoveAll holds a descriptor
// per level and failed with EMFILE: the /etc merge, which removes all but
// /etc from a snapshot of the old upper, then failed at every boot after
// an update (TestKeepOnlyEtcDeepTree).
func TestRemoveTreeDeeperThanTheFileLimit(t *testing.T) {
	lowFileLimit(t, 64)
	dir := t.TempDir()
	nest(t, filepath.Join(dir), 1000)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := removeTree(root, "d"); err != nil {
		t.Fatalf("removeTree of a tree 1000 deep under a limit of 64 files: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "d")); !os.IsNotExist(err) {
		t.Errorf("the tree is still there: %v", err)
	}
}

// TestRemoveTreeFollowsNoLink: symlinks in the tree (to a directory
// outside it, to its own parent) are removed as links; what they point to
// stays.
func TestRemoveTreeFollowsNoLink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "tree/a/b"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(dir, "tree/a/out")))
	must(t, os.Symlink("..", filepath.Join(dir, "tree/a/b/up")))
	must(t, os.WriteFile(filepath.Join(dir, "tree/a/b/f"), nil, 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "sibling"), 0o755))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := removeTree(root, "tree"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(outside, "keep"), filepath.Join(dir, "sibling")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v: want it kept", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "tree")); !os.IsNotExist(err) {
		t.Errorf("tree: %v, want it removed", err)
	}
}

// TestKeepOnlyEtcDeepTree: the in-place /etc merge's cut of a snapshot of
// the old upper to its /etc succeeds with a tree in its /tmp nested deeper
// than the open-file limit, and keeps /etc.
func TestKeepOnlyEtcDeepTree(t *testing.T) {
	lowFileLimit(t, 64)
	tmp := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(tmp, "upper/etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tmp, "upper/tmp"), 0o1777))
	must(t, os.MkdirAll(filepath.Join(tmp, "work/work"), 0o755))
	must(t, os.WriteFile(filepath.Join(tmp, "upper/etc/hostname"), []byte("mine\n"), 0o644))
	nest(t, filepath.Join(tmp, "upper/tmp"), 1000)
	if err := keepOnlyEtc(tmp); err != nil {
		t.Fatalf("keepOnlyEtc: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "upper/etc/hostname")); err != nil || string(b) != "mine\n" {
		t.Errorf("upper/etc/hostname: %q, %v: want it kept", b, err)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "upper/tmp")); !os.IsNotExist(err) {
		t.Errorf("upper/tmp: %v, want it removed", err)
	}
}

// TestRemoveTreeUnderSignals: a read of a directory that a pending signal
// cut short (the Go runtime preempts goroutines with SIGURG) returns "."
// and ".." only; the removal read on. It used to take the directory for
// empty and fail its rmdir with ENOTEMPTY (found by a review).
func TestRemoveTreeUnderSignals(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for round := range 3 {
		tree := filepath.Join(dir, "wide")
		for i := range 1000 {
			p := filepath.Join(tree, strconv.Itoa(i))
			if i%2 == 0 {
				must(t, os.MkdirAll(p, 0o755))
			} else {
				must(t, os.MkdirAll(tree, 0o755))
				must(t, os.WriteFile(p, nil, 0o644))
			}
		}
		runtime.LockOSThread()
		tid := unix.Gettid()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
		err := removeTree(root, "wide")
		close(stop)
		<-done
		runtime.UnlockOSThread()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestRemoveTreeNameNoLookupFinds: a name the directory lists but no
// lookup finds (a NUL byte written into an ext4 directory entry by hand:
// the kernel's read passes it, Go's parse cuts the name there, and every
// unlink of it is ENOENT) is left, and the removal ends, failing on the
// directory that is not empty. Each such ENOENT counted as a change, so
// the directory was read again for ever: PID 1 spun in the prune of a
// crafted trash directory at every boot (found by a hunting helper).
func TestRemoveTreeNameNoLookupFinds(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "trash/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "trash/f"), nil, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "trash/sub/ghost"), nil, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "trash/sub/g"), nil, 0o600))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ghost := 0
	err = removeAllWith(root, "trash", func(fd int, name string, flags int) error {
		if name != "ghost" {
			return unix.Unlinkat(fd, name, flags)
		}
		if ghost++; ghost > 10 {
			return unix.EIO // ends a removal that would go on for ever
		}
		return unix.ENOENT
	})
	if !errors.Is(err, unix.ENOTEMPTY) || ghost > 2 {
		t.Errorf("err %v after %d unlinks of the name no lookup finds: want the directory not empty, after one or two", err, ghost)
	}
	for _, gone := range []string{"trash/f", "trash/sub/g"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it removed", gone, err)
		}
	}
}
