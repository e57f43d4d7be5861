// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Each row of the rules table in docs/data.md.
func TestMergeRules(t *testing.T) {
	for _, tc := range []struct {
		name             string
		local, base, new map[string]string
		noBase           bool
		want             map[string]string // dump of Out
		conflicts        []string          // paths
		carried, deleted int
		same             int
		skipped          int
	}{{
		name:  "modified locally, unchanged upstream: carried",
		local: map[string]string{"hostname": "f mybox"}, base: map[string]string{"hostname": "f debian"}, new: map[string]string{"hostname": "f debian"},
		want:    map[string]string{"hostname": "file 0644 0:0 mybox"},
		carried: 1,
	}, {
		name:  "modified locally and upstream: local wins, new kept as .keel-new, conflict",
		local: map[string]string{"motd": "f mine"}, base: map[string]string{"motd": "f v1"}, new: map[string]string{"motd": "f v2"},
		want:      map[string]string{"motd": "file 0644 0:0 mine", "motd.keel-new": "file 0644 0:0 v2"},
		conflicts: []string{"/etc/motd"}, carried: 1,
	}, {
		name:  "the same change on both sides: no conflict",
		local: map[string]string{"motd": "f v2"}, base: map[string]string{"motd": "f v1"}, new: map[string]string{"motd": "f v2"},
		want: map[string]string{"motd": "file 0644 0:0 v2"}, carried: 1,
	}, {
		name:  "added locally: carried",
		local: map[string]string{"app/app.conf": "f x=1"}, base: map[string]string{}, new: map[string]string{},
		want:    map[string]string{"app": "directory 0755 0:0", "app/app.conf": "file 0644 0:0 x=1"},
		carried: 2,
	}, {
		name:  "added on both sides, different: conflict",
		local: map[string]string{"new.conf": "f mine"}, base: map[string]string{}, new: map[string]string{"new.conf": "f theirs"},
		want:      map[string]string{"new.conf": "file 0644 0:0 mine", "new.conf.keel-new": "file 0644 0:0 theirs"},
		conflicts: []string{"/etc/new.conf"}, carried: 1,
	}, {
		name:  "copied up but unchanged: the new image's version stands",
		local: map[string]string{"issue": "f Debian"}, base: map[string]string{"issue": "f Debian"}, new: map[string]string{"issue": "f Debian 13"},
		want: map[string]string{}, same: 1,
	}, {
		name:  "deleted locally, unchanged upstream: whiteout carried",
		local: map[string]string{"cron.d/job": "w"}, base: map[string]string{"cron.d/job": "f x"}, new: map[string]string{"cron.d/job": "f x"},
		want:    map[string]string{"cron.d": "directory 0755 0:0", "cron.d/job": "whiteout 0000 0:0"},
		carried: 1, deleted: 1,
	}, {
		name:  "deleted locally, changed upstream: stays deleted, conflict",
		local: map[string]string{"job": "w"}, base: map[string]string{"job": "f x"}, new: map[string]string{"job": "f y"},
		want:      map[string]string{"job": "whiteout 0000 0:0", "job.keel-new": "file 0644 0:0 y"},
		conflicts: []string{"/etc/job"}, deleted: 1,
	}, {
		name:  "deleted locally, removed upstream: nothing to hide",
		local: map[string]string{"job": "w"}, base: map[string]string{"job": "f x"}, new: map[string]string{},
		want: map[string]string{}, deleted: 1,
	}, {
		name:  "modified locally, removed upstream: local kept, conflict",
		local: map[string]string{"old.conf": "f mine"}, base: map[string]string{"old.conf": "f x"}, new: map[string]string{},
		want:      map[string]string{"old.conf": "file 0644 0:0 mine"},
		conflicts: []string{"/etc/old.conf"}, carried: 1,
	}, {
		name:  "mode changed locally, content upstream: new content, local mode, no conflict",
		local: map[string]string{"sudoers": "F 0440 v1"}, base: map[string]string{"sudoers": "f v1"}, new: map[string]string{"sudoers": "f v2"},
		want: map[string]string{"sudoers": "file 0440 0:0 v2"}, carried: 1,
	}, {
		name:  "type change locally (file to symlink), changed upstream: local wins, conflict",
		local: map[string]string{"resolv.conf": "l /run/resolv.conf"}, base: map[string]string{"resolv.conf": "f a"}, new: map[string]string{"resolv.conf": "f b"},
		want:      map[string]string{"resolv.conf": "symlink 0777 0:0 -> /run/resolv.conf", "resolv.conf.keel-new": "file 0644 0:0 b"},
		conflicts: []string{"/etc/resolv.conf"}, carried: 1,
	}, {
		name:  "type change upstream (dir to file), local file inside: the directory wins whole (opaque), conflict",
		local: map[string]string{"x/y": "f mine"}, base: map[string]string{"x/y": "f a"}, new: map[string]string{"x": "f now a file"},
		want:      map[string]string{"x": "directory 0755 0:0 opaque", "x/y": "file 0644 0:0 mine"},
		conflicts: []string{"/etc/x/y", "/etc/x"}, carried: 2,
	}, {
		name:  "type change upstream (file to dir), local file: local wins, conflict",
		local: map[string]string{"z": "f mine"}, base: map[string]string{"z": "f a"}, new: map[string]string{"z/inner": "f b"},
		want:      map[string]string{"z": "file 0644 0:0 mine"},
		conflicts: []string{"/etc/z"}, carried: 1,
	}, {
		name:  "opaque directory: carried whole, still opaque",
		local: map[string]string{"apt": "o", "apt/sources.list": "f same"}, base: map[string]string{"apt/sources.list": "f same", "apt/other": "f o"}, new: map[string]string{"apt/sources.list": "f same", "apt/other": "f o"},
		want:    map[string]string{"apt": "directory 0755 0:0 opaque", "apt/sources.list": "file 0644 0:0 same"},
		carried: 2,
	}, {
		name:    "machine-id and host keys: always carried, never a conflict",
		local:   map[string]string{"machine-id": "f abc", "ssh/ssh_host_ed25519_key": "F 0600 k", "ssh/sshd_config": "f same"},
		base:    map[string]string{"machine-id": "f abc", "ssh/ssh_host_ed25519_key": "f old", "ssh/sshd_config": "f same"},
		new:     map[string]string{"machine-id": "f uninitialized", "ssh/ssh_host_ed25519_key": "f other", "ssh/sshd_config": "f same"},
		want:    map[string]string{"machine-id": "file 0644 0:0 abc", "ssh": "directory 0755 0:0", "ssh/ssh_host_ed25519_key": "file 0600 0:0 k"},
		carried: 3, same: 1,
	}, {
		name:  "fifos are skipped and reported; stale .keel-new copies too",
		local: map[string]string{"initctl": "p", "motd.keel-new": "f stale"}, base: map[string]string{}, new: map[string]string{},
		want: map[string]string{}, skipped: 2,
	}, {
		name:  "a stale .keel-new beside a file still in conflict: made again from the new image",
		local: map[string]string{"motd": "f mine", "motd.keel-new": "f stale", "z/a": "f 1", "z/a.keel-new": "f stale"},
		base:  map[string]string{"motd": "f v1", "z/a": "f 0"}, new: map[string]string{"motd": "f v2", "z/a": "f 2"},
		want: map[string]string{"motd": "file 0644 0:0 mine", "motd.keel-new": "file 0644 0:0 v2",
			"z": "directory 0755 0:0", "z/a": "file 0644 0:0 1", "z/a.keel-new": "file 0644 0:0 2"},
		conflicts: []string{"/etc/motd", "/etc/z/a"}, carried: 3, skipped: 2,
	}, {
		name:  "no base: every local change carried, no conflicts",
		local: map[string]string{"motd": "f mine", "issue": "f Debian", "gone": "w"}, noBase: true, new: map[string]string{"motd": "f v2", "issue": "f Debian 13", "gone": "f g"},
		want:    map[string]string{"motd": "file 0644 0:0 mine", "issue": "file 0644 0:0 Debian", "gone": "whiteout 0000 0:0"},
		carried: 2, deleted: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			o := trees(t, tc.local, tc.base, tc.new)
			if tc.noBase {
				o.Base = ""
			}
			mk(t, o.Local, nil)
			r, err := mergeBoth(t, o)
			if err != nil {
				t.Fatal(err)
			}
			got := dump(t, o.Out)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("out:\n got %v\nwant %v", got, tc.want)
			}
			var paths []string
			for _, c := range r.Conflicts {
				paths = append(paths, c.Path)
			}
			if !reflect.DeepEqual(paths, tc.conflicts) {
				t.Errorf("conflicts %v, want %v (%+v)", paths, tc.conflicts, r.Conflicts)
			}
			if r.Carried != tc.carried || r.Deleted != tc.deleted || r.Same != tc.same || len(r.Skipped) != tc.skipped {
				t.Errorf("carried %d deleted %d same %d skipped %q, want %d %d %d %d", r.Carried, r.Deleted, r.Same, r.Skipped, tc.carried, tc.deleted, tc.same, tc.skipped)
			}
		})
	}
}

// Ownership, times and extended attributes follow a carried file; the
// overlay attributes that point into the old lower do not.
func TestMergeKeepsMetadata(t *testing.T) {
	o := trees(t, map[string]string{"app/key": "F 0640 secret", "link": "l key"}, map[string]string{}, map[string]string{})
	key := filepath.Join(o.Local, "app/key")
	must(t, os.Lchown(key, 1234, 5678))
	must(t, os.Lchown(filepath.Join(o.Local, "link"), 42, 43))
	must(t, unix.Lsetxattr(key, "user.note", []byte("hello"), 0))
	must(t, unix.Lsetxattr(key, "trusted.overlay.origin", []byte("stale-handle"), 0))
	ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 5}, {Sec: 1_100_000_000, Nsec: 7}}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, key, ts, unix.AT_SYMLINK_NOFOLLOW))
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(o.Local, "app"), ts, 0))
	must(t, unix.Chmod(filepath.Join(o.Local, "app"), 0o750))
	if _, err := mergeBoth(t, o); err != nil {
		t.Fatal(err)
	}
	got, err := lookup(filepath.Join(o.Out, "app/key"))
	must(t, err)
	if got.st.Uid != 1234 || got.st.Gid != 5678 || got.mode() != 0o640 || got.st.Mtim != ts[1] {
		t.Errorf("app/key: uid %d gid %d mode %o mtime %v", got.st.Uid, got.st.Gid, got.mode(), got.st.Mtim)
	}
	dir, _ := lookup(filepath.Join(o.Out, "app"))
	if dir.mode() != 0o750 || dir.st.Mtim != ts[1] {
		t.Errorf("app: mode %o mtime %v, want 0750 and the local mtime", dir.mode(), dir.st.Mtim)
	}
	link, _ := lookup(filepath.Join(o.Out, "link"))
	if link.st.Uid != 42 || link.st.Gid != 43 {
		t.Errorf("link owner %d:%d, want 42:43", link.st.Uid, link.st.Gid)
	}
	xs, err := xattrs(filepath.Join(o.Out, "app/key"))
	must(t, err)
	if string(xs["user.note"]) != "hello" {
		t.Errorf("user.note = %q, want hello", xs["user.note"])
	}
	buf := make([]byte, 64)
	if _, err := unix.Lgetxattr(filepath.Join(o.Out, "app/key"), "trusted.overlay.origin", buf); err == nil {
		t.Error("trusted.overlay.origin was carried: it names a file of the old image")
	}
}

// A metacopy=on copy-up has no data: it is carried with the base's data.
func TestMergeMetacopy(t *testing.T) {
	o := trees(t, map[string]string{"f": "F 0600 "}, map[string]string{"f": "f data"}, map[string]string{"f": "f data"})
	must(t, unix.Lsetxattr(filepath.Join(o.Local, "f"), "trusted.overlay.metacopy", nil, 0))
	if _, err := mergeBoth(t, o); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, o.Out)["f"]; got != "file 0600 0:0 data" {
		t.Errorf("f = %q, want the base's data with the local mode", got)
	}
}

// Account databases merge entry by entry inside a tree merge.
func TestMergeAccountFiles(t *testing.T) {
	base := "root:x:0:0:root:/root:/bin/bash\n"
	o := trees(t,
		map[string]string{"passwd": "f " + base + "alice:x:1000:1000::/home/alice:/bin/bash\n", "shadow": "F 0640 root:*:1::::::\nsetup:$6$k:1::::::\nalice:$6$h:2::::::\n"},
		map[string]string{"passwd": "f " + base, "shadow": "F 0640 root:*:1::::::\nsetup:$6$k:1::::::\n"},
		// The new image locks setup, whose entry the machine never changed.
		map[string]string{"passwd": "f " + base + "_svc:x:999:999::/:/usr/sbin/nologin\n", "shadow": "F 0640 root:*:1::::::\nsetup:!*:4::::::\n_svc:!:3::::::\n"})
	r, err := mergeBoth(t, o)
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, o.Out)
	want := map[string]string{
		"passwd": "file 0644 0:0 " + base + "alice:x:1000:1000::/home/alice:/bin/bash\n_svc:x:999:999::/:/usr/sbin/nologin\n",
		"shadow": "file 0640 0:0 root:*:1::::::\nsetup:!*:4::::::\nalice:$6$h:2::::::\n_svc:!:3::::::\n",
	}
	if !reflect.DeepEqual(got, want) || len(r.Conflicts) != 0 {
		t.Errorf("got %v, conflicts %v\nwant %v", got, r.Conflicts, want)
	}
}

// TestMergeAccountFileOfNewlines: an account database of a few MiB of
// newlines (corruption, or written by whoever held the disk) is not parsed
// entry by entry — about 450 bytes a line, gigabytes for PID 1, whose end
// is a kernel panic —: the local version is kept, reported.
func TestMergeAccountFileOfNewlines(t *testing.T) {
	base := "root:x:0:0:root:/root:/bin/bash\n"
	o := trees(t, map[string]string{"passwd": "f " + base + strings.Repeat("\n", 4<<20)},
		map[string]string{"passwd": "f " + base}, map[string]string{"passwd": "f " + base + "_svc:x:999:999::/:/usr/sbin/nologin\n"})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := mergeBoth(t, o)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<20 {
		t.Errorf("the merge allocated %d MiB for a passwd of 4 MiB of newlines", got>>20)
	}
	if len(r.Conflicts) != 1 || !strings.Contains(r.Conflicts[0].Reason, "not merged entry by entry, the local version is kept") {
		t.Errorf("conflicts %v: want passwd kept as it is, reported", r.Conflicts)
	}
	if got := dump(t, o.Out)["passwd"]; got != "file 0644 0:0 "+base+strings.Repeat("\n", 4<<20) {
		t.Errorf("passwd: %d bytes, want the local version", len(got))
	}
}

// TestMergeManyDirectoriesBounded: an old upper's /etc with thousands of
// subdirectories (root's, or whoever held the disk) is merged with a
// bounded number of goroutines: one per directory at once held 480 MiB of
// PID 1 for 200,000. The sampled count can miss a peak, and it also counts
// goroutines that gave their place back and have not yet returned (a
// loaded machine leaves them so for a while: 94 were seen once in CI
// against 64 places), so the bound is loose: a tenth of the goroutines
// one per directory would make, and four times the places.
func TestMergeManyDirectoriesBounded(t *testing.T) {
	o := trees(t, map[string]string{}, map[string]string{}, map[string]string{})
	for i := range 3000 {
		must(t, os.MkdirAll(filepath.Join(o.Local, "x", strconv.Itoa(i), "y"), 0o755))
	}
	start := runtime.NumGoroutine()
	stop, peak := make(chan struct{}), make(chan int)
	go func() {
		p := 0
		for {
			select {
			case <-stop:
				peak <- p
				return
			default:
				p = max(p, runtime.NumGoroutine()-start)
				runtime.Gosched()
			}
		}
	}()
	_, err := Merge(o)
	close(stop)
	if p := <-peak; p > 4*dirGoroutines {
		t.Errorf("%d goroutines at once for 3000 directories: want at most %d (%d places, %d workers)", p, 4*dirGoroutines, dirGoroutines, workers)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "x/2999/y")); err != nil {
		t.Errorf("x/2999/y not carried: %v", err)
	}
}

// No local tree (an upper that never touched /etc): nothing to do.
func TestMergeNoLocal(t *testing.T) {
	o := trees(t, nil, nil, nil)
	o.Local = filepath.Join(o.Local, "missing")
	r, err := mergeBoth(t, o)
	if err != nil || r.Carried != 0 {
		t.Fatalf("Merge: %+v, %v", r, err)
	}
	if _, err := os.Lstat(o.Out); !os.IsNotExist(err) {
		t.Errorf("out was made: %v", err)
	}
	o.Local = filepath.Join(o.Base, "file")
	must(t, os.WriteFile(o.Local, nil, 0o644))
	if _, err := mergeBoth(t, o); err == nil || !strings.Contains(err.Error(), "expected a directory") {
		t.Errorf("local is a file: %v", err)
	}
}

// Only regular files are read: a fifo in the base or the new
// image at a path the machine changed does not block the merge.
func TestMergeFifoUpstream(t *testing.T) {
	o := trees(t, map[string]string{"x": "f local", "ln": "f l"}, map[string]string{"x": "p", "ln": "l /dev/zero"}, map[string]string{"x": "p", "ln": "l /dev/zero"})
	r, err := mergeBoth(t, o)
	if err != nil || r.Carried != 2 {
		t.Fatalf("Merge: %+v, %v", r, err)
	}
}

// A carried file is created with its own permission bits and set again
// only when the umask or a chown took some away: setuid survives the
// chown, and bits the umask masks are restored.
func TestMergeModes(t *testing.T) {
	o := trees(t, map[string]string{"suid": "F 04755 x", "open": "F 0666 y", "plain": "F 0640 z"}, map[string]string{}, map[string]string{})
	must(t, os.Lchown(filepath.Join(o.Local, "suid"), 1000, 1000))
	must(t, unix.Chmod(filepath.Join(o.Local, "suid"), 0o4755)) // chown cleared it
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	if _, err := mergeBoth(t, o); err != nil {
		t.Fatal(err)
	}
	got := dump(t, o.Out)
	for rel, want := range map[string]string{"suid": "file 4755 1000:1000 x", "open": "file 0666 0:0 y", "plain": "file 0640 0:0 z"} {
		if got[rel] != want {
			t.Errorf("%s = %q, want %q", rel, got[rel], want)
		}
	}
}

// TestMergeBaseReadError: a base file that cannot be read fails the merge
// with a *fs.PathError naming it (the init then merges without a base,
// mergeFrom): /proc/self/mem reads EIO at offset 0, standing in for a
// block of the old image that fails verification.
func TestMergeBaseReadError(t *testing.T) {
	local, newDir, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "etc")
	if err := os.WriteFile(filepath.Join(local, "mem"), nil, 0o600); err != nil { // what the base's looks like
		t.Fatal(err)
	}
	_, err := Merge(Options{Local: local, Base: "/proc/self", New: newDir, Out: out})
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/proc/self/mem" {
		t.Fatalf("Merge over an unreadable base = %v, want a *fs.PathError for /proc/self/mem", err)
	}
	if _, err := Merge(Options{Local: local, New: newDir, Out: filepath.Join(t.TempDir(), "etc")}); err != nil {
		t.Errorf("the same merge without a base: %v", err)
	}
}

// TestMergeLargeFiles: a file the merge must read whole (an account
// database) is never read past maxContent: a sparse 64 GiB /etc/shadow
// (root's truncate, or a corrupt size) fails the merge naming it, in place
// and copying alike; its allocation used to kill PID 1 (out of memory is
// fatal in Go) at every update. Other large files (a database under /etc)
// are compared and carried in fixed-size reads, a sparse one kept sparse.
func TestMergeLargeFiles(t *testing.T) {
	shadow := "F 0640 root:*:1::::::\n"
	o := trees(t, map[string]string{"shadow": shadow}, map[string]string{"shadow": shadow}, map[string]string{"shadow": shadow})
	must(t, os.Truncate(filepath.Join(o.Local, "shadow"), 64<<30))
	if _, err := mergeBoth(t, o); err == nil || !strings.Contains(err.Error(), "shadow") || !errors.Is(err, errTooLarge) {
		t.Errorf("a 64 GiB shadow: %v, want it named as too large", err)
	}

	o = trees(t, map[string]string{"big.db": "f x"}, map[string]string{"big.db": "f x", "same.db": "f x"}, map[string]string{"big.db": "f x", "same.db": "f x"})
	size := int64(maxContent + 3*streamBlock/2)
	must(t, os.Truncate(filepath.Join(o.Local, "big.db"), size)) // changed locally: carried
	f, err := os.OpenFile(filepath.Join(o.Local, "big.db"), os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("end"), size-3)
	must(t, err)
	must(t, f.Close())
	for _, d := range []string{o.Local, o.Base} { // the same in both: compared, not carried
		must(t, os.WriteFile(filepath.Join(d, "same.db"), nil, 0o644))
		must(t, os.Truncate(filepath.Join(d, "same.db"), size))
	}
	r, err := mergeBoth(t, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(o.Out, "big.db"))
	want, _ := os.ReadFile(filepath.Join(o.Local, "big.db"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("big.db carried: %d bytes, %v; want the local %d bytes", len(got), err, len(want))
	}
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(o.Out, "big.db"), &st))
	if st.Blocks*512 > 4*streamBlock {
		t.Errorf("big.db carried with %d bytes allocated of %d: want its holes kept", st.Blocks*512, size)
	}
	if _, err := os.Lstat(filepath.Join(o.Out, "same.db")); !os.IsNotExist(err) || r.Carried != 1 {
		t.Errorf("same.db: %v, carried %d: want only big.db carried", err, r.Carried)
	}
}

// TestMergeAttributeOnlyChange: a change that is only an extended
// attribute is a local change (docs/data.md). An ACL that setfacl added
// without changing the mode, or a relabelled file, used to be taken for an
// unchanged copy-up and lost at the update. Attributes the copy-up itself
// adds or rewrites (overlayfs' own, security.ima, one a file system adds)
// are not a change, nor is a label's terminating NUL; an update that only
// relabels a file the machine edited is no conflict; the integrity
// attribute of the local content is not written over the update's.
func TestMergeAttributeOnlyChange(t *testing.T) {
	// alice (1000) may read: user::rw- user:1000:r-- group::r-- mask::r-- other::r--,
	// which leaves the mode 0644 (the group bits are the mask).
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, 0xffffffff}, {0x02, 4, 1000}, {0x04, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		acl = append(acl, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8), byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	o := trees(t,
		map[string]string{"acl.conf": "f x", "acl-up.conf": "f v1", "label.conf": "f y", "copy.conf": "f z", "d": "d", "d/f": "f same",
			"prop.conf": "f p", "nul.conf": "f n", "relabel.conf": "f mine"},
		map[string]string{"acl.conf": "f x", "acl-up.conf": "f v1", "label.conf": "f y", "copy.conf": "f z", "d/f": "f same",
			"prop.conf": "f p", "nul.conf": "f n", "relabel.conf": "f r"},
		map[string]string{"acl.conf": "f x", "acl-up.conf": "f v2", "label.conf": "f y", "copy.conf": "f z2", "d/f": "f same",
			"prop.conf": "F 0600 p2", "nul.conf": "f n", "relabel.conf": "f r"})
	local := func(rel string) string { return filepath.Join(o.Local, rel) }
	for _, rel := range []string{"acl.conf", "acl-up.conf"} {
		if err := unix.Lsetxattr(local(rel), "system.posix_acl_access", acl, 0); err != nil {
			t.Skipf("no POSIX ACLs on %s: %v", o.Local, err)
		}
	}
	must(t, unix.Lsetxattr(filepath.Join(o.Base, "label.conf"), "user.label", []byte("etc_t"), 0))
	must(t, unix.Lsetxattr(local("label.conf"), "user.label", []byte("shadow_t"), 0))
	for _, d := range []string{o.Base, o.Local} {
		must(t, unix.Lsetxattr(filepath.Join(d, "copy.conf"), "user.label", []byte("etc_t"), 0))
	}
	must(t, unix.Lsetxattr(local("copy.conf"), "trusted.overlay.origin", []byte("handle"), 0))
	must(t, unix.Lsetxattr(local("copy.conf"), "security.ima", []byte("rehashed"), 0))
	must(t, unix.Lsetxattr(local("d"), "user.policy", []byte("strict"), 0))
	// An attribute no administrator sets, added at the copy-up (as btrfs
	// gives every new inode under a directory with btrfs.compression): not
	// a change, so the update's mode and content stand.
	must(t, unix.Lsetxattr(local("prop.conf"), "security.fs-added", []byte("zstd"), 0))
	// A label with and without its terminating NUL is the same label.
	must(t, unix.Lsetxattr(filepath.Join(o.Base, "nul.conf"), "security.selinux", []byte("system_u:object_r:etc_t:s0\x00"), 0))
	must(t, unix.Lsetxattr(local("nul.conf"), "security.selinux", []byte("system_u:object_r:etc_t:s0"), 0))
	// The update relabels a file the machine edited: no conflict.
	must(t, unix.Lsetxattr(filepath.Join(o.Base, "relabel.conf"), "user.label", []byte("etc_t"), 0))
	must(t, unix.Lsetxattr(filepath.Join(o.New, "relabel.conf"), "user.label", []byte("conf_t"), 0))
	must(t, unix.Lsetxattr(local("relabel.conf"), "user.label", []byte("etc_t"), 0))
	// The integrity attribute of the local content is not carried over
	// the update's content.
	must(t, unix.Lsetxattr(local("acl-up.conf"), "security.ima", []byte("hash of v1"), 0))

	r, err := mergeBoth(t, o)
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, o.Out)
	want := map[string]string{
		"acl.conf":     "file 0644 0:0 x",
		"acl-up.conf":  "file 0644 0:0 v2", // the new content with the local ACL: no conflict
		"label.conf":   "file 0644 0:0 y",
		"d":            "directory 0755 0:0",
		"relabel.conf": "file 0644 0:0 mine",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("out:\n got %v\nwant %v", got, want)
	}
	if r.Carried != 5 || r.Same != 4 || len(r.Conflicts) != 0 {
		t.Errorf("carried %d same %d conflicts %v, want 5, 4 (copy, prop, nul, d/f), none", r.Carried, r.Same, r.Conflicts)
	}
	if xs, err := allXattrs(filepath.Join(o.Out, "acl-up.conf")); err != nil || xs["security.ima"] != nil {
		t.Errorf("acl-up.conf over the update's content: security.ima %q, %v: want none", xs["security.ima"], err)
	}
	for rel, attr := range map[string]string{"acl.conf": "system.posix_acl_access", "acl-up.conf": "system.posix_acl_access", "label.conf": "user.label", "d": "user.policy"} {
		xs, err := allXattrs(filepath.Join(o.Out, rel))
		must(t, err)
		lx, _ := allXattrs(local(rel))
		if !bytes.Equal(xs[attr], lx[attr]) {
			t.Errorf("%s: %s = %q, want the local %q", rel, attr, xs[attr], lx[attr])
		}
	}

	changes, err := Changes(o.Local, o.Base)
	must(t, err)
	kinds := map[string]string{}
	for _, c := range changes {
		kinds[c.Path] = c.Change
	}
	for path, want := range map[string]string{"/etc/acl.conf": "metadata", "/etc/label.conf": "metadata", "/etc/copy.conf": "unchanged copy", "/etc/d": "metadata",
		"/etc/prop.conf": "unchanged copy", "/etc/nul.conf": "unchanged copy"} {
		if kinds[path] != want {
			t.Errorf("Changes: %s is %q, want %q", path, kinds[path], want)
		}
	}
}

// TestMergeDirReplacedUpstream: the new image replaces a directory by a
// symlink or a file, and the machine changed something in it. The
// directory wins whole, as the machine saw it: written opaque, holding
// the old image's entries it did not change (subdirectories too), without
// those it deleted. It used to be written with only the changed files, not
// opaque: over the new image's non-directory overlayfs showed only those,
// every other file of the directory gone. Nothing is looked up through the
// new image's symlink: an absolute one pointed out of the image.
func TestMergeDirReplacedUpstream(t *testing.T) {
	outside := t.TempDir() // where an absolute symlink of the new image points in the initramfs
	must(t, os.WriteFile(filepath.Join(outside, "a.conf"), []byte("outside"), 0o644))
	for _, n := range []string{"l ../usr/lib/foo.d", "l " + outside, "f a file now"} {
		t.Run(n, func(t *testing.T) {
			o := trees(t,
				map[string]string{"foo.d/a.conf": "f mine", "foo.d/sub/x": "w", "foo.d/sub/y": "f y", "foo.d/same": "f same"},
				map[string]string{"foo.d/a.conf": "f a", "foo.d/b.conf": "f b", "foo.d/same": "f same",
					"foo.d/sub/x": "f x", "foo.d/sub/y": "f y", "foo.d/sub/z": "f z", "foo.d/other/o": "f o"},
				map[string]string{"foo.d": n})
			before := view(t, o.Base, o.Local)
			r, err := mergeBoth(t, o)
			must(t, err)
			want := map[string]string{
				"foo.d": "directory 0755 0:0 opaque", "foo.d/a.conf": "file 0644 0:0 mine", "foo.d/b.conf": "file 0644 0:0 b",
				"foo.d/same": "file 0644 0:0 same", "foo.d/sub": "directory 0755 0:0 opaque", "foo.d/sub/y": "file 0644 0:0 y",
				"foo.d/sub/z": "file 0644 0:0 z", "foo.d/other": "directory 0755 0:0", "foo.d/other/o": "file 0644 0:0 o",
			}
			if got := dump(t, o.Out); !reflect.DeepEqual(got, want) {
				t.Errorf("out:\n got %v\nwant %v", got, want)
			}
			if after := view(t, o.New, o.Out); !reflect.DeepEqual(after, before) {
				t.Errorf("after the update the machine sees\n %v\nbefore it saw\n %v", after, before)
			}
			var paths []string
			for _, c := range r.Conflicts {
				paths = append(paths, c.Path)
			}
			if want := []string{"/etc/foo.d/a.conf", "/etc/foo.d"}; !reflect.DeepEqual(paths, want) {
				t.Errorf("conflicts %+v, want %v", r.Conflicts, want)
			}
		})
	}
}

// TestMergeDirMetadataFromUpdate: a directory that is not a local change
// itself (its copy-up has the base's mode, owner and attributes), made
// because the machine added or changed something in it, takes the new
// image's mode, owner, attributes and times, as an unchanged file does:
// it used to keep the copy-up's, which overlayfs shows over the new
// image's, the update's chmod or chown lost. A directory whose mode the
// machine changed keeps it, a conflict when the update changed it too.
func TestMergeDirMetadataFromUpdate(t *testing.T) {
	o := trees(t,
		map[string]string{"app/local.conf": "f mine", "both/local.conf": "f mine"},
		map[string]string{"app/x": "f x", "both/x": "f x"},
		map[string]string{"app/x": "f x", "both/x": "f x"})
	at := func(d, rel string) string { return filepath.Join(d, rel) }
	must(t, os.Chmod(at(o.Local, "app"), 0o700))
	must(t, os.Chmod(at(o.Base, "app"), 0o700))
	must(t, os.Chmod(at(o.New, "app"), 0o750))
	must(t, os.Lchown(at(o.New, "app"), 0, 123))
	must(t, unix.Lsetxattr(at(o.New, "app"), "user.policy", []byte("new"), 0))
	ts := []unix.Timespec{{Sec: 1_200_000_000, Nsec: 3}, {Sec: 1_300_000_000, Nsec: 9}}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, at(o.New, "app"), ts, 0))
	must(t, os.Chmod(at(o.Local, "both"), 0o700)) // changed on both sides
	must(t, os.Chmod(at(o.New, "both"), 0o750))
	r, err := mergeBoth(t, o)
	must(t, err)
	got := dump(t, o.Out)
	for rel, want := range map[string]string{"app": "directory 0750 0:123", "both": "directory 0700 0:0"} {
		if got[rel] != want {
			t.Errorf("%s = %q, want %q", rel, got[rel], want)
		}
	}
	e, err := lookupLocal(at(o.Out, "app"))
	must(t, err)
	if string(e.xa["user.policy"]) != "new" || e.st.Mtim != ts[1] {
		t.Errorf("app: user.policy %q, mtime %v: want the new image's", e.xa["user.policy"], e.st.Mtim)
	}
	if len(r.Conflicts) != 1 || r.Conflicts[0].Path != "/etc/both" {
		t.Errorf("conflicts %+v, want /etc/both", r.Conflicts)
	}
}

// TestMergeUpdateUnderLocalOpaqueDir: a directory the machine emptied and
// made again (rm -r; mkdir: opaque) hides what the update adds or changes
// in the image's directory, as a whiteout does: a conflict says how many,
// not counting what the local directory holds itself (merged by the
// rules); nothing to say when the update changed nothing there (found in
// review: it was silent).
func TestMergeUpdateUnderLocalOpaqueDir(t *testing.T) {
	for name, c := range map[string]struct {
		local map[string]string
		new   map[string]string
		want  string
	}{
		"an entry added": {map[string]string{"foo.d": "o", "foo.d/mine": "f m"},
			map[string]string{"foo.d/a": "f a", "foo.d/security-fix.conf": "f new"}, "adds or changes 1 entry in it: they stay hidden"},
		"added and held locally": {map[string]string{"foo.d": "o", "foo.d/security-fix.conf": "f mine"},
			map[string]string{"foo.d/a": "f a", "foo.d/security-fix.conf": "f new"}, ""},
		"nothing changed upstream": {map[string]string{"foo.d": "o", "foo.d/mine": "f m"},
			map[string]string{"foo.d/a": "f a"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			o := trees(t, c.local, map[string]string{"foo.d/a": "f a"}, c.new)
			r, err := mergeBoth(t, o)
			must(t, err)
			var got []string
			for _, cf := range r.Conflicts {
				if cf.Path == "/etc/foo.d" {
					got = append(got, cf.Reason)
				}
			}
			switch {
			case c.want == "" && len(got) != 0:
				t.Errorf("conflicts on foo.d %q, want none", got)
			case c.want != "" && (len(got) != 1 || !strings.Contains(got[0], c.want)):
				t.Errorf("conflicts on foo.d %q, want one saying %q", got, c.want)
			}
		})
	}
}

// TestMergeDirAttrsOnlyKeepsUpdateMode: a directory whose only local
// change is an attribute (a chcon, a user attribute), its mode untouched,
// holding a file the machine added, while the update chmods it: the local
// attribute is kept with the update's mode and owner, no conflict. The
// update's mode was lost and a conflict blamed a mode change never made
// (found in review).
func TestMergeDirAttrsOnlyKeepsUpdateMode(t *testing.T) {
	o := trees(t,
		map[string]string{"app/local.conf": "f mine"},
		map[string]string{"app/x": "f x"},
		map[string]string{"app/x": "f x"})
	must(t, os.Chmod(filepath.Join(o.New, "app"), 0o750))
	must(t, os.Lchown(filepath.Join(o.New, "app"), 0, 123))
	must(t, unix.Lsetxattr(filepath.Join(o.Local, "app"), "user.note", []byte("hi"), 0))
	r, err := mergeBoth(t, o)
	must(t, err)
	if got := dump(t, o.Out)["app"]; got != "directory 0750 0:123" {
		t.Errorf("app = %q, want the update's directory 0750 0:123", got)
	}
	e, err := lookupLocal(filepath.Join(o.Out, "app"))
	must(t, err)
	if string(e.xa["user.note"]) != "hi" {
		t.Errorf("app: user.note %q, want the machine's", e.xa["user.note"])
	}
	if len(r.Conflicts) != 0 {
		t.Errorf("conflicts %+v, want none", r.Conflicts)
	}
}

// TestMergeCopyUpUnderReplacedDir: a subdirectory of a directory the update
// replaces by a symlink or a file, in the upper only because overlayfs
// copied it up (a file rewritten with the same bytes, or emptied of
// nothing): no local change, so nothing is written and the update's
// non-directory shows. It made the directory win whole, opaque and frozen
// at every later update (found in review of the fix that fills it).
func TestMergeCopyUpUnderReplacedDir(t *testing.T) {
	for name, c := range map[string]struct{ local, base, new map[string]string }{
		"unchanged file": {map[string]string{"foo.d/sub/x": "f same"},
			map[string]string{"foo.d/sub/x": "f same", "foo.d/a": "f a"},
			map[string]string{"foo.d": "l ../usr/lib/foo.d"}},
		"empty subdirectory": {map[string]string{"foo.d/sub": "d"},
			map[string]string{"foo.d/sub/x": "f same", "foo.d/a": "f a"},
			map[string]string{"foo.d": "f now a file"}},
	} {
		t.Run(name, func(t *testing.T) {
			o := trees(t, c.local, c.base, c.new)
			r, err := mergeBoth(t, o)
			must(t, err)
			if got := dump(t, o.Out); len(got) != 0 {
				t.Errorf("out %v, want nothing (the update's non-directory shows)", got)
			}
			if len(r.Conflicts) != 0 {
				t.Errorf("conflicts %+v, want none", r.Conflicts)
			}
		})
	}
}

// TestMergeDefaultACLNotInherited: a directory with a default ACL
// (setfacl -d) holding entries without an ACL (made before it, or
// setfacl -b). The copying merge made the directory with its default ACL
// before its entries, which then inherited it: a file of mode 0640 came
// out with an access ACL letting group 4 read it. Every entry the merge
// creates has only the ACLs its source has, in place (a .keel-new, a
// rewritten file) as when copying, and the directory keeps its own.
func TestMergeDefaultACLNotInherited(t *testing.T) {
	o := trees(t,
		map[string]string{"d/secret": "F 0640 s3cret", "d/sub/f": "F 0600 f", "d/gone": "w", "d/motd": "f mine", "d/sudoers": "F 0440 v1"},
		map[string]string{"d/gone": "f g", "d/motd": "f v1", "d/sudoers": "F 0640 v1"},
		map[string]string{"d/gone": "f g", "d/motd": "f v2", "d/sudoers": "F 0640 v2"})
	// user::rwx group::r-x group:4:r-- mask::r-x other::r-x
	def := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 7, 0xffffffff}, {0x04, 5, 0xffffffff}, {0x08, 4, 4}, {0x10, 5, 0xffffffff}, {0x20, 5, 0xffffffff}} {
		def = append(def, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8), byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	if err := unix.Lsetxattr(filepath.Join(o.Local, "d"), "system.posix_acl_default", def, 0); err != nil {
		t.Skipf("no POSIX ACLs on %s: %v", o.Local, err)
	}
	r, err := mergeBoth(t, o)
	must(t, err)
	for _, rel := range []string{"d/secret", "d/sub", "d/sub/f", "d/gone", "d/motd", "d/motd.keel-new", "d/sudoers"} {
		xs, err := allXattrs(filepath.Join(o.Out, rel))
		must(t, err)
		for name, v := range xs {
			if strings.HasPrefix(name, "system.posix_acl_") {
				t.Errorf("%s has %s (% x), which its source has not", rel, name, v)
			}
		}
	}
	xs, err := allXattrs(filepath.Join(o.Out, "d"))
	must(t, err)
	if !bytes.Equal(xs["system.posix_acl_default"], def) {
		t.Errorf("d: default ACL % x, want % x", xs["system.posix_acl_default"], def)
	}
	want := map[string]string{"d/secret": "file 0640 0:0 s3cret", "d/sub/f": "file 0600 0:0 f", "d/sudoers": "file 0440 0:0 v2"}
	got := dump(t, o.Out)
	for rel, w := range want {
		if got[rel] != w {
			t.Errorf("%s = %q, want %q", rel, got[rel], w)
		}
	}
	if len(r.Conflicts) != 1 {
		t.Errorf("conflicts %+v, want /etc/d/motd", r.Conflicts)
	}
}

// TestMergeUserOverlayXattrs: keel mounts overlayfs in the trusted
// namespace (no userxattr), so an attribute user.overlay.* in the upper is
// an ordinary user attribute, carried like any other, and marks nothing:
// a file with a stray user.overlay.metacopy whose content the machine
// changed was taken for a metadata-only copy-up and dropped as unchanged,
// the content lost, and a directory with user.overlay.opaque was carried
// as opaque, hiding the image's entries the machine saw.
func TestMergeUserOverlayXattrs(t *testing.T) {
	o := trees(t,
		map[string]string{"app.conf": "f mine", "d/local": "f l"},
		map[string]string{"app.conf": "f orig", "d/img": "f i"},
		map[string]string{"app.conf": "f orig", "d/img": "f i", "d/new": "f n"})
	must(t, unix.Lsetxattr(filepath.Join(o.Local, "app.conf"), "user.overlay.metacopy", nil, 0))
	must(t, unix.Lsetxattr(filepath.Join(o.Local, "d"), "user.overlay.opaque", []byte("y"), 0))
	before := view(t, o.Base, o.Local)
	r, err := mergeBoth(t, o)
	must(t, err)
	want := map[string]string{"app.conf": "file 0644 0:0 mine", "d": "directory 0755 0:0", "d/local": "file 0644 0:0 l"}
	if got := dump(t, o.Out); !reflect.DeepEqual(got, want) || r.Same != 0 {
		t.Errorf("out %v, same %d\nwant %v, none", got, r.Same, want)
	}
	for rel, name := range map[string]string{"app.conf": "user.overlay.metacopy", "d": "user.overlay.opaque"} {
		xs, err := allXattrs(filepath.Join(o.Out, rel))
		must(t, err)
		if _, ok := xs[name]; !ok {
			t.Errorf("%s: %s not carried", rel, name)
		}
	}
	before["d/new"] = "file 0644 0:0 n"
	before["app.conf"] = "file 0644 0:0 mine"
	if after := view(t, o.New, o.Out); !reflect.DeepEqual(after, before) {
		t.Errorf("after the update the machine sees\n %v\nwant\n %v", after, before)
	}
}

// TestMergeUpdateUnderLocalNonDir: what the update adds or changes in a
// directory the machine deleted or replaced by a symlink or a file stays
// hidden by the local change, which wins; it is now a conflict naming how
// many entries of the directory the update added or changed (one listing
// of each image, not recursive). It was hidden with no notice: two
// directories compared equal whatever they held.
func TestMergeUpdateUnderLocalNonDir(t *testing.T) {
	o := trees(t,
		map[string]string{"foo.d": "w", "bar.d": "l /srv/bar.d", "same.d": "w"},
		map[string]string{"foo.d/a": "f a", "bar.d/x": "f x", "bar.d/y": "f y", "same.d/s": "f s"},
		map[string]string{"foo.d/a": "f a", "foo.d/security-fix.conf": "f new", "bar.d/x": "f x2", "bar.d/y": "f y", "bar.d/z/q": "f q", "same.d/s": "f s"})
	r, err := mergeBoth(t, o)
	must(t, err)
	want := map[string]string{"foo.d": "whiteout 0000 0:0", "bar.d": "symlink 0777 0:0 -> /srv/bar.d", "same.d": "whiteout 0000 0:0"}
	if got := dump(t, o.Out); !reflect.DeepEqual(got, want) {
		t.Errorf("out %v\nwant %v", got, want)
	}
	got := map[string]string{}
	for _, c := range r.Conflicts {
		got[c.Path] = c.Reason
	}
	for path, n := range map[string]string{"/etc/foo.d": "adds or changes 1 entry ", "/etc/bar.d": "adds or changes 2 entries "} {
		if !strings.Contains(got[path], n) {
			t.Errorf("%s: conflict %q, want one naming %s the update adds or changes", path, got[path], n)
		}
	}
	if len(r.Conflicts) != 2 {
		t.Errorf("conflicts %+v, want foo.d and bar.d only", r.Conflicts)
	}
}
