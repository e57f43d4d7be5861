// SPDX-License-Identifier: Apache-2.0

package mounts

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type recorder struct {
	mounted, unmounted, dirs []string
	failOn                   string
}

func (r *recorder) sys() Sys {
	return Sys{
		Mount: func(src, target, fstype string, flags uintptr, data string) error {
			if target == r.failOn {
				return unix.EBUSY
			}
			r.mounted = append(r.mounted, target)
			return nil
		},
		Unmount: func(target string, flags int) error {
			r.unmounted = append(r.unmounted, target)
			return nil
		},
		MkdirAll: func(p string, _ os.FileMode) error { r.dirs = append(r.dirs, p); return nil },
	}
}

func TestStackUndoesInReverse(t *testing.T) {
	r := &recorder{failOn: "/c"}
	s := &Stack{Sys: r.sys()}
	err := s.DoAll(Mount{Source: "x", Target: "/a"}, Mount{Source: "y", Target: "/b"}, Mount{Source: "z", Target: "/c", FSType: "ext4", Flags: unix.MS_RDONLY})
	if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("err = %v, want EBUSY wrapped", err)
	}
	if want := "mount z on /c (ext4, ro): device or resource busy"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if errs := s.Undo(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if want := []string{"/b", "/a"}; !reflect.DeepEqual(r.unmounted, want) {
		t.Errorf("unmounted %v, want %v", r.unmounted, want)
	}
}

// TestStackUndoTo: only the mounts after the mark are undone, and the
// ones before stay for a later Undo.
func TestStackUndoTo(t *testing.T) {
	r := &recorder{}
	s := &Stack{Sys: r.sys()}
	if err := s.DoAll(Mount{Source: "x", Target: "/a"}, Mount{Source: "y", Target: "/b"}); err != nil {
		t.Fatal(err)
	}
	mark := s.Len()
	if err := s.DoAll(Mount{Source: "z", Target: "/c"}, Mount{Source: "w", Target: "/d"}); err != nil {
		t.Fatal(err)
	}
	if errs := s.UndoTo(mark); len(errs) != 0 {
		t.Fatal(errs)
	}
	if want := []string{"/d", "/c"}; !reflect.DeepEqual(r.unmounted, want) {
		t.Errorf("UndoTo unmounted %v, want %v", r.unmounted, want)
	}
	if s.Len() != mark {
		t.Errorf("Len after UndoTo = %d, want %d", s.Len(), mark)
	}
	s.Undo()
	if want := []string{"/d", "/c", "/b", "/a"}; !reflect.DeepEqual(r.unmounted, want) {
		t.Errorf("unmounted %v, want %v", r.unmounted, want)
	}
}

func TestRootMounts(t *testing.T) {
	l := DefaultLayout
	for _, tc := range []struct {
		mode, upper string
		targets     []string
		wantErr     string
	}{
		{mode: OverlayOff, targets: []string{"/newroot"}},
		{mode: OverlayTmpfs, targets: []string{"/run/keel/overlay", "/newroot"}},
		{mode: OverlayPersistent, upper: "/run/keel/data/@overlay/a-x", targets: []string{"/newroot"}},
		{mode: OverlayPersistent, wantErr: "needs a data partition"},
		{mode: "bogus", wantErr: `overlay mode "bogus": expected tmpfs, persistent or off`},
	} {
		ms, err := l.RootMounts(tc.mode, tc.upper)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.mode, err, tc.wantErr)
			}
			continue
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Target)
		}
		if !reflect.DeepEqual(got, tc.targets) {
			t.Errorf("%s: targets %v, want %v", tc.mode, got, tc.targets)
		}
	}
	ms, _ := l.RootMounts(OverlayTmpfs, "")
	r := &recorder{}
	s := &Stack{Sys: r.sys()}
	if err := s.DoAll(ms...); err != nil {
		t.Fatal(err)
	}
	want := []string{"/run/keel/overlay", "/run/keel/overlay/upper", "/run/keel/overlay/work", "/newroot"}
	if !reflect.DeepEqual(r.dirs, want) {
		t.Errorf("dirs %v, want %v (upper and work made inside the fresh tmpfs)", r.dirs, want)
	}
}

// TestFrozenUpperMounts: the persistent upper's upper/ is the top lower
// layer over the image, the upper and work directories are made inside a
// fresh tmpfs, and a separator in the upper's path is escaped.
func TestFrozenUpperMounts(t *testing.T) {
	ms := DefaultLayout.FrozenUpperMounts("/run/keel/data/@overlay/a/img:1")
	if len(ms) != 2 || ms[0].FSType != "tmpfs" || ms[0].Target != DefaultLayout.Upper || ms[1].Target != DefaultLayout.NewRoot {
		t.Fatalf("mounts %+v: want a tmpfs at %s, then the overlay at %s", ms, DefaultLayout.Upper, DefaultLayout.NewRoot)
	}
	want := `lowerdir=/run/keel/data/@overlay/a/img\:1/upper:` + DefaultLayout.Lower + `,upperdir=/run/keel/overlay/upper,workdir=/run/keel/overlay/work,redirect_dir=follow`
	if ms[1].Data != want {
		t.Errorf("overlay data %q, want %q", ms[1].Data, want)
	}
	r := &recorder{}
	if err := (&Stack{Sys: r.sys()}).DoAll(ms...); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/run/keel/overlay", "/run/keel/overlay/upper", "/run/keel/overlay/work", "/newroot"}; !reflect.DeepEqual(r.dirs, want) {
		t.Errorf("dirs %v, want %v: nothing made in the persistent upper", r.dirs, want)
	}
}

func TestOverlayDataEscapes(t *testing.T) {
	got := OverlayData("/l,1", "/u:2", `/w\3`)
	if want := `lowerdir=/l\,1,upperdir=/u\:2,workdir=/w\\3,redirect_dir=follow`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestResolveInit(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "lib/systemd/systemd"), []byte("x"), 0o755))
	must(os.WriteFile(filepath.Join(root, "sbin/noexec"), []byte("x"), 0o644))
	must(os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("../lib/systemd/systemd", filepath.Join(root, "sbin/rel")))
	must(os.Symlink("loop", filepath.Join(root, "sbin/loop")))
	// Directories behind symlinks are the new root's too: an image's
	// absolute /lib2 -> /usr/lib, and an upper's links that climb out.
	must(os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd2"), []byte("x"), 0o755))
	must(os.Symlink("/usr/lib", filepath.Join(root, "lib2")))
	must(os.Symlink("../../../../../../../..", filepath.Join(root, "up")))
	must(os.Symlink("/", filepath.Join(root, "abs")))
	must(os.Symlink("/usr/lib/systemd/../../lib/./systemd/systemd2", filepath.Join(root, "sbin/dots")))
	for _, tc := range []struct{ init, want, err string }{
		{init: "/lib2/systemd/systemd2", want: "/usr/lib/systemd/systemd2"},
		{init: "/sbin/dots", want: "/usr/lib/systemd/systemd2"},
		{init: "/abs/lib2/systemd/systemd2", want: "/usr/lib/systemd/systemd2"},
		{init: "/up/bin/sh", err: "init /up/bin/sh not found in the new root"},   // not the host's /bin/sh
		{init: "/abs/bin/sh", err: "init /abs/bin/sh not found in the new root"}, // nor here
		{init: "/up/usr/lib/systemd/systemd2", want: "/usr/lib/systemd/systemd2"},
		{init: "/sbin/noexec/x", err: "/sbin/noexec in the new root is a regular file, expected a directory"},
		{init: "/sbin/init", want: "/lib/systemd/systemd"},
		{init: "/sbin/rel", want: "/lib/systemd/systemd"},
		{init: "/sbin/missing", err: "init /sbin/missing not found in the new root"},
		{init: "/sbin/noexec", err: "not an executable file"},
		{init: "/sbin/loop", err: "too many levels"},
		{init: "sbin/init", err: "expected an absolute path"},
	} {
		got, err := ResolveInit(root, tc.init)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.init, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.init, got, err, tc.want)
		}
	}
}

// FuzzResolveInit: whatever the new root's symlinks say, a resolved init
// is a clean absolute path of an executable regular file inside the root,
// reached through no symlink; and a root with no executable file resolves
// nothing, wherever its links point (the host's /bin/sh is outside it).
func FuzzResolveInit(f *testing.F) {
	f.Add("/sbin/init", "/usr/lib", "../x", false)
	f.Add("/a/b/c", "/", "../../..", true)
	f.Add("/a/x", "a", "/a/../a/x", true)
	f.Add("/bin/sh", "..", "/bin", false)
	f.Fuzz(func(t *testing.T, init, link1, link2 string, exe bool) {
		if strings.ContainsRune(link1+link2, 0) || strings.ContainsRune(init, 0) || len(init) > 256 {
			return
		}
		root := t.TempDir()
		for _, d := range []string{"a/b", "usr/lib"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mode := os.FileMode(0o644)
		if exe {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(root, "usr/lib/x"), nil, mode); err != nil {
			t.Fatal(err)
		}
		for p, target := range map[string]string{"a/b/c": link1, "a/x": link2, "bin": link1} {
			if target != "" {
				os.Symlink(target, filepath.Join(root, p))
			}
		}
		got, err := ResolveInit(root, init)
		if err != nil {
			return
		}
		if !exe {
			t.Fatalf("%q resolved to %q in a root without an executable file", init, got)
		}
		if got != path.Clean(got) || !strings.HasPrefix(got, "/") {
			t.Fatalf("%q resolved to %q: not a clean absolute path", init, got)
		}
		for p := got; p != "/"; p = path.Dir(p) {
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil || fi.Mode()&os.ModeSymlink != 0 {
				t.Fatalf("%q resolved to %q through %s: %v, %v", init, got, p, fi, err)
			}
		}
		fi, err := os.Stat(filepath.Join(root, got))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			t.Fatalf("%q resolved to %q, not an executable file: %v", init, got, err)
		}
	})
}

func TestFreeInitramfsKeepsNewRoot(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"bin/busybox", "etc/keel/initrd.json", "newroot/sbin/init", "init"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := FreeInitramfs(root, filepath.Join(root, "newroot")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "newroot" {
		t.Errorf("left %v, want only newroot", entries)
	}
	if _, err := os.Stat(filepath.Join(root, "newroot/sbin/init")); err != nil {
		t.Errorf("new root damaged: %v", err)
	}
}

// TestCheckMountPoints: a mount point of the new root must be a directory
// or absent; a symlink or a file the upper layer put there is refused,
// named; the image's own link (the same link in the lower layer: /home ->
// var/home, OSTree's layout) is the image's, and stays.
func TestCheckMountPoints(t *testing.T) {
	newRoot, lower := t.TempDir(), t.TempDir()
	for _, d := range []string{"dev", "proc", "var/home"} {
		if err := os.MkdirAll(filepath.Join(newRoot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, root := range []string{newRoot, lower} {
		if err := os.Symlink("var/home", filepath.Join(root, "home")); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckMountPoints(newRoot, lower, "/dev", "/proc", "/sys", "/home"); err != nil {
		t.Errorf("directories, an absent /sys and the image's /home link: %v", err)
	}
	for _, tc := range []struct{ rel, link, file, want string }{
		{rel: "/var", link: "/", want: "the mount point /var in the new root is a symlink, expected a directory"},
		{rel: "/run", file: "x", want: "the mount point /run in the new root is a regular file"},
		{rel: "/sys", link: "/", want: "/sys in the new root is a symlink"},
	} {
		p := filepath.Join(newRoot, tc.rel)
		os.RemoveAll(p)
		var err error
		if tc.link != "" {
			err = os.Symlink(tc.link, p)
		} else {
			err = os.WriteFile(p, []byte(tc.file), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMountPoints(newRoot, lower, tc.rel); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.rel, err, tc.want)
		}
		os.RemoveAll(p)
	}
	// The image's link changed by the upper is the upper's.
	os.Remove(filepath.Join(newRoot, "home"))
	if err := os.Symlink("/", filepath.Join(newRoot, "home")); err != nil {
		t.Fatal(err)
	}
	if err := CheckMountPoints(newRoot, lower, "/home"); err == nil {
		t.Error("an upper's /home -> / over the image's /home -> var/home was taken")
	}
}

// TestResolveMountPoint: a bind's target is followed inside the new root,
// through the image's own links (relative or absolute) and no other: a
// link the data partition put behind the image's (@var's home -> ../sbin)
// used to choose where @home was mounted, over the image's /sbin; an
// image's absolute /home -> /var/home went to the initramfs's /var/home.
func TestResolveMountPoint(t *testing.T) {
	for _, tc := range []struct {
		name         string
		image, upper map[string]string // symlinks, path -> target; the upper's are the new root's
		dirs         []string          // directories of the new root
		rel, want    string
		err          string
	}{
		{name: "directory", dirs: []string{"home"}, rel: "/home", want: "/home"},
		{name: "image's relative link", dirs: []string{"var/home"}, image: map[string]string{"home": "var/home"}, rel: "/home", want: "/var/home"},
		{name: "image's absolute link", dirs: []string{"var/home"}, image: map[string]string{"home": "/var/home"}, rel: "/home", want: "/var/home"},
		{name: "image's link, its target the image's link too", dirs: []string{"data/home"}, image: map[string]string{"home": "var/home", "var": "data"}, rel: "/home", want: "/data/home"},
		{name: "data partition's link behind the image's", dirs: []string{"var", "sbin"}, image: map[string]string{"home": "var/home"}, upper: map[string]string{"var/home": "../sbin"},
			rel: "/home", err: "the mount point /home: /var/home in the new root is a symlink the image does not have there"},
		{name: "upper's link over a directory of the image", dirs: []string{"sbin"}, upper: map[string]string{"home": "sbin"},
			rel: "/home", err: "/home in the new root is a symlink the image does not have there"},
		{name: "upper's link to another target", dirs: []string{"var/home", "sbin"}, image: map[string]string{"home": "var/home"}, upper: map[string]string{"home": "sbin"},
			rel: "/home", err: "/home in the new root is a symlink the image does not have there"},
		{name: "image's link to a file", image: map[string]string{"home": "etc/x"}, dirs: []string{"etc"}, rel: "/home", err: "is a regular file, expected a directory"},
		{name: "image's link to nothing, in a directory", image: map[string]string{"home": "var/home"}, dirs: []string{"var"}, rel: "/home", want: "/var/home"},
		{name: "missing", dirs: []string{"var"}, rel: "/home", want: "/home"},
		{name: "image's link into nothing", image: map[string]string{"home": "var/x/home"}, dirs: []string{"var"}, rel: "/home", err: "the mount point /home not found in the new root"},
		{name: "image's link that climbs out", image: map[string]string{"home": "../../../../home2"}, dirs: []string{"home2"}, rel: "/home", want: "/home2"},
		{name: "image's loop", image: map[string]string{"home": "home"}, rel: "/home", err: "too many levels"},
		{name: "relative", dirs: []string{"home"}, rel: "home", err: "expected an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newRoot, lower := t.TempDir(), t.TempDir()
			for _, d := range tc.dirs {
				mustOK(t, os.MkdirAll(filepath.Join(newRoot, d), 0o755))
			}
			mustOK(t, os.MkdirAll(filepath.Join(newRoot, "etc"), 0o755))
			mustOK(t, os.WriteFile(filepath.Join(newRoot, "etc/x"), nil, 0o644))
			link := func(root, p, target string) {
				os.RemoveAll(filepath.Join(root, p))
				mustOK(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
				mustOK(t, os.Symlink(target, filepath.Join(root, p)))
			}
			for p, target := range tc.image {
				link(lower, p, target)
				link(newRoot, p, target)
			}
			for p, target := range tc.upper {
				link(newRoot, p, target)
			}
			got, err := ResolveMountPoint(newRoot, lower, tc.rel)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %q, %v; want an error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzResolveMountPoint: whatever links the new root holds, a resolved
// mount point is a clean absolute path of a directory inside it, reached
// through no symlink the image does not have at the same place.
func FuzzResolveMountPoint(f *testing.F) {
	f.Add("/home", "var/home", "../sbin", "/")
	f.Add("/home", "/var/home", "", "")
	f.Add("/a/b", "..", "/home", "a")
	f.Fuzz(func(t *testing.T, rel, imageLink, upperLink, otherLink string) {
		if strings.ContainsRune(rel+imageLink+upperLink+otherLink, 0) || len(rel) > 256 {
			return
		}
		newRoot, lower := t.TempDir(), t.TempDir()
		for _, d := range []string{"var", "sbin", "a"} {
			mustOK(t, os.MkdirAll(filepath.Join(newRoot, d), 0o755))
		}
		imageHas := imageLink != "" && os.Symlink(imageLink, filepath.Join(newRoot, "home")) == nil &&
			os.Symlink(imageLink, filepath.Join(lower, "home")) == nil
		for p, target := range map[string]string{"var/home": upperLink, "a/b": otherLink} {
			if target != "" {
				os.Symlink(target, filepath.Join(newRoot, p))
			}
		}
		got, err := ResolveMountPoint(newRoot, lower, rel)
		if err != nil {
			return
		}
		if got != path.Clean(got) || !strings.HasPrefix(got, "/") {
			t.Fatalf("%q resolved to %q: not a clean absolute path", rel, got)
		}
		for p := path.Dir(got); p != "/"; p = path.Dir(p) {
			fi, err := os.Lstat(filepath.Join(newRoot, p))
			if err != nil || fi.Mode()&os.ModeSymlink != 0 {
				t.Fatalf("%q resolved to %q through %s: %v, %v", rel, got, p, fi, err)
			}
		}
		if fi, err := os.Lstat(filepath.Join(newRoot, got)); err == nil && !fi.IsDir() {
			t.Fatalf("%q resolved to %q, a %v: want a directory or nothing", rel, got, fi.Mode())
		} else if err != nil {
			if pfi, perr := os.Lstat(filepath.Join(newRoot, path.Dir(got))); perr != nil || !pfi.IsDir() {
				t.Fatalf("%q resolved to %q, missing in %v, %v: want its parent a directory", rel, got, pfi, perr)
			}
		}
		// Only the image's link may have been followed: without it, a
		// lookup that met a symlink fails.
		if !imageHas {
			if _, err := resolveIn(newRoot, rel, "x", func(string) error { return errors.New("followed") }, true); err == nil {
				return
			}
			t.Fatalf("%q resolved to %q through a link the image does not have", rel, got)
		}
	})
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestResolveAPIFilesystems: /dev, /proc, /sys and /run move to where the
// image's own links lead in the new root; a missing one is moved to its
// plain path (the move makes it); a link the image does not have, or one
// the data partition put behind the image's, is refused.
func TestResolveAPIFilesystems(t *testing.T) {
	newRoot, lower := t.TempDir(), t.TempDir()
	for _, d := range []string{"dev", "proc", "var/run", "sbin"} {
		mustOK(t, os.MkdirAll(filepath.Join(newRoot, d), 0o755))
	}
	for _, root := range []string{newRoot, lower} {
		mustOK(t, os.Symlink("var/run", filepath.Join(root, "run")))
	}
	at, err := ResolveAPIFilesystems(newRoot, lower)
	if want := map[string]string{"/dev": "/dev", "/proc": "/proc", "/sys": "/sys", "/run": "/var/run"}; err != nil || !reflect.DeepEqual(at, want) {
		t.Errorf("got %v, %v; want %v", at, err, want)
	}
	mustOK(t, os.Remove(filepath.Join(newRoot, "var/run")))
	mustOK(t, os.Symlink("../sbin", filepath.Join(newRoot, "var/run")))
	if _, err := ResolveAPIFilesystems(newRoot, lower); err == nil || !strings.Contains(err.Error(), "/var/run in the new root is a symlink the image does not have there") {
		t.Errorf("@var's run -> ../sbin behind the image's /run -> var/run: %v, want it refused", err)
	}
	mustOK(t, os.Symlink("/", filepath.Join(newRoot, "sys")))
	mustOK(t, os.Remove(filepath.Join(newRoot, "var/run")))
	mustOK(t, os.Mkdir(filepath.Join(newRoot, "var/run"), 0o755))
	if _, err := ResolveAPIFilesystems(newRoot, lower); err == nil || !strings.Contains(err.Error(), "/sys in the new root is a symlink the image does not have there") {
		t.Errorf("an upper's /sys -> /: %v, want it refused", err)
	}
}
