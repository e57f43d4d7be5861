// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/datapart"
)

// benchTrees is a realistic update: an /etc of 1,500 files in 50
// directories; the machine changed 300 of them, added 60, deleted 20 and
// added 20 users; the new image changed 100 files (30 of them changed
// locally, 20 deleted locally: 50 conflicts) and added a system user.
func benchTrees(b testing.TB) (Options, int64) {
	dir := b.TempDir()
	o := Options{Local: filepath.Join(dir, "local"), Base: filepath.Join(dir, "base"), New: filepath.Join(dir, "new")}
	base, local, up := map[string]string{}, map[string]string{}, map[string]string{}
	for i := range 1500 {
		base[fmt.Sprintf("d%02d/f%04d.conf", i%50, i)] = fmt.Sprintf("f setting%d = %s\n", i, strings.Repeat("x", 200))
	}
	for i := range 300 {
		local[fmt.Sprintf("d%02d/f%04d.conf", i%50, i)] = fmt.Sprintf("f local setting%d\n", i)
	}
	for i := range 60 {
		local[fmt.Sprintf("d%02d/added%02d.conf", i%50, i)] = "f added\n"
	}
	for i := 300; i < 320; i++ {
		local[fmt.Sprintf("d%02d/f%04d.conf", i%50, i)] = "w"
	}
	for i := 270; i < 370; i++ {
		up[fmt.Sprintf("d%02d/f%04d.conf", i%50, i)] = fmt.Sprintf("f upstream setting%d\n", i)
	}
	var pw, sh, lpw, lsh strings.Builder
	for i := range 30 {
		fmt.Fprintf(&pw, "sys%d:x:%d:%d::/:/usr/sbin/nologin\n", i, 100+i, 100+i)
		fmt.Fprintf(&sh, "sys%d:!:19000::::::\n", i)
	}
	lpw.WriteString(pw.String())
	lsh.WriteString(sh.String())
	for i := range 20 {
		fmt.Fprintf(&lpw, "user%d:x:%d:%d::/home/user%d:/bin/bash\n", i, 1000+i, 1000+i, i)
		fmt.Fprintf(&lsh, "user%d:$6$salt$%s:19000:0:99999:7:::\n", i, strings.Repeat("h", 86))
	}
	base["passwd"], base["shadow"] = "f "+pw.String(), "f "+sh.String()
	local["passwd"], local["shadow"] = "f "+lpw.String(), "f "+lsh.String()
	up["passwd"] = "f " + pw.String() + "_new:x:990:990::/:/usr/sbin/nologin\n"
	up["shadow"] = "f " + sh.String() + "_new:!:20000::::::\n"
	newTree := map[string]string{}
	for k, v := range base {
		newTree[k] = v
	}
	for k, v := range up {
		newTree[k] = v
	}
	for p, tree := range map[string]map[string]string{o.Base: base, o.New: newTree, o.Local: local} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		mk(b, p, tree)
	}
	var size int64
	filepath.Walk(o.Local, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			size += fi.Size()
		}
		return err
	})
	return o, size
}

// BenchmarkMerge times one merge of benchTrees on a quiet file system:
// what the trees' making and earlier merges wrote is flushed first, outside
// the timing (the boot's flush of the merge's own writes is a step of its
// own, datapart.NewUpper).
func BenchmarkMerge(b *testing.B) {
	o, size := benchTrees(b)
	out := b.TempDir()
	b.SetBytes(size)
	b.ResetTimer() // the trees' making is not the merge
	for i := range b.N {
		b.StopTimer()
		syncfs(b, out)
		b.StartTimer()
		o.Out = filepath.Join(out, fmt.Sprint(i))
		r, err := Merge(o)
		if err != nil {
			b.Fatal(err)
		}
		if r.Carried < 360 || len(r.Conflicts) != 50 {
			b.Fatalf("carried %d, %d conflicts: the change set is not what it should be", r.Carried, len(r.Conflicts))
		}
	}
}

// syncfs flushes the file system holding dir.
func syncfs(b testing.TB, dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		b.Fatalf("syncfs %s: %v", dir, err)
	}
}

// BenchmarkWriteFloor times what any merge of benchTrees must write: the
// carried regular files (local content, from memory) and the 50 new
// versions kept next to conflicts, each created, written and given its
// times, in the merge's directories. It reads nothing and decides nothing;
// make bench sets it beside BenchmarkMerge, as the floor on that machine.
func BenchmarkWriteFloor(b *testing.B) {
	o, _ := benchTrees(b)
	files, dirs := floorFiles(o)
	out := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		syncfs(b, out)
		b.StartTimer()
		must(b, writeFloor(filepath.Join(out, fmt.Sprint(i)), files, dirs))
	}
}

// floorFile is a file any merge of benchTrees writes.
type floorFile struct {
	rel  string
	data []byte
}

// floorFiles lists the regular files of o.Local with their content, and 50
// of them again as .keel-new copies, and the directories they are in.
func floorFiles(o Options) ([]floorFile, []string) {
	var files []floorFile
	dirs := map[string]bool{}
	keep := 50
	filepath.Walk(o.Local, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(o.Local, p)
			data, _ := os.ReadFile(p)
			files = append(files, floorFile{rel, data})
			dirs[filepath.Dir(rel)] = true
			if keep > 0 {
				files, keep = append(files, floorFile{rel + KeepSuffix, data}), keep-1
			}
		}
		return err
	})
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	return files, ds
}

// writeFloor writes files under root, in dirs: each created, written once
// and given its times.
func writeFloor(root string, files []floorFile, dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{{Sec: 1}, {Sec: 2}}
	for _, f := range files {
		p := filepath.Join(root, f.rel)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_, err = unix.Write(fd, f.data)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err == nil {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkMergeInPlace times the merge of benchTrees as it runs when the
// old upper is a btrfs subvolume: a snapshot of it, then the merge editing
// the snapshot's etc/ in place (both timed; the snapshot commits a btrfs
// transaction). It needs TMPDIR on btrfs (make bench's guest with
// KEEL_BENCH_ETC_FS=btrfs).
func BenchmarkMergeInPlace(b *testing.B) {
	o, size := benchTrees(b)
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(o.Local), &st); err != nil || st.Type != unix.BTRFS_SUPER_MAGIC {
		b.Skipf("%s is not on btrfs (%v): a snapshot needs it", o.Local, err)
	}
	dir := b.TempDir()
	must(b, datapart.CreateSubvolume(dir, "old"))
	old := filepath.Join(dir, "old")
	must(b, os.Mkdir(filepath.Join(old, "upper"), 0o755))
	if _, err := Merge(Options{Local: o.Local, New: o.New, Out: filepath.Join(old, "upper", "etc")}); err != nil {
		b.Fatal(err) // without a base: a copy of the local tree
	}
	o.Local = filepath.Join(old, "upper", "etc")
	o.InPlace = true
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		syncfs(b, dir)
		b.StartTimer()
		name := fmt.Sprint(i)
		must(b, datapart.Snapshot(old, dir, name))
		o.Out = filepath.Join(dir, name, "upper", "etc")
		r, err := Merge(o)
		if err != nil {
			b.Fatal(err)
		}
		if r.Carried < 360 || len(r.Conflicts) != 50 {
			b.Fatalf("carried %d, %d conflicts: the change set is not what it should be", r.Carried, len(r.Conflicts))
		}
	}
}
