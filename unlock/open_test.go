package unlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anatol/luks.go"
	"golang.org/x/sys/unix"
)

// fakeMapper records the volumes it would map.
type fakeMapper struct {
	created []*luks.Volume
	removed []string
}

func (f *fakeMapper) CreateCrypt(name string, v *luks.Volume) (uint64, error) {
	f.created = append(f.created, v)
	return unix.Mkdev(253, uint32(len(f.created))), nil
}

func (f *fakeMapper) Remove(name string) error {
	f.removed = append(f.removed, name)
	return nil
}

// luksVolume formats a 20 MiB file as LUKS2 with cryptsetup, unlocked by
// keyFile, with the extra cryptsetup options given (the KDF).
func luksVolume(t *testing.T, keyFile string, opts ...string) string {
	t.Helper()
	cs, err := exec.LookPath("cryptsetup")
	if err != nil {
		t.Skip("cryptsetup not installed")
	}
	img := filepath.Join(t.TempDir(), "luks.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 20<<20))
	args := append([]string{"luksFormat", "--type", "luks2", "-q"}, opts...)
	if out, err := exec.Command(cs, append(args, img, keyFile)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup luksFormat: %v\n%s", err, out)
	}
	return img
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(p, []byte(secret), 0o600))
	return p
}

var (
	pbkdf2Opts = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
	argonOpts  = []string{"--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
)

func TestOpenCryptsetupVolumes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []string
		secret string // the key file's content: binary, or a passphrase without newline
	}{
		{name: "pbkdf2 key file", opts: pbkdf2Opts, secret: "\x00\x01binary key file\xff\n"},
		{name: "argon2id passphrase", opts: argonOpts, secret: "correct horse battery staple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := luksVolume(t, writeKey(t, tc.secret), tc.opts...)
			fm := &fakeMapper{}
			o := Opener{Role: "data", DevDir: filepath.Join(t.TempDir(), "mapper"), Mapper: fm}

			_, err := o.Open(img, "keel-data", Key{Secret: []byte(tc.secret + "x"), Kind: Passphrase})
			want := "data (LUKS2 " + img + "): no key slot matches the passphrase"
			if err == nil || err.Error() != want || !errors.Is(err, ErrNoKeySlot) {
				t.Errorf("wrong key: err = %v, want %q", err, want)
			}
			if len(fm.created) != 0 {
				t.Fatal("wrong key mapped a device")
			}

			path, err := o.Open(img, "keel-data", Key{Secret: []byte(tc.secret), Kind: KeyFile})
			must(t, err)
			if path != filepath.Join(o.DevDir, "keel-data") {
				t.Errorf("path %s", path)
			}
			var st unix.Stat_t
			must(t, unix.Stat(path, &st))
			if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(253, 1) {
				t.Errorf("node mode %o rdev %d", st.Mode, st.Rdev)
			}
			v := fm.created[0]
			if v.BackingDevice != img || v.StorageOffset != 16<<20 || v.StorageSize != 4<<20 ||
				v.StorageEncryption != "aes-xts-plain64" || v.LuksType != "LUKS2" {
				t.Errorf("volume %+v", v)
			}
			// A node left for another device is refused, and the device
			// just made is removed again.
			_, err = o.Open(img, "keel-data", Key{Secret: []byte(tc.secret), Kind: KeyFile})
			if err == nil || !strings.Contains(err.Error(), "exists and is not block device 253:2") {
				t.Errorf("stale node: err = %v", err)
			}
			if len(fm.removed) != 1 || fm.removed[0] != "keel-data" {
				t.Errorf("removed %v after the node failed", fm.removed)
			}
			must(t, o.Close("keel-data"))
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("node left: %v", err)
			}
		})
	}
}

// TestOpenSecondKeySlot opens a volume whose passphrase is in key slot 1.
func TestOpenSecondKeySlot(t *testing.T) {
	keyFile := writeKey(t, "first")
	img := luksVolume(t, keyFile, pbkdf2Opts...)
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "-q", "--key-file", keyFile}, append(pbkdf2Opts, img, writeKey(t, "second"))...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	fm := &fakeMapper{}
	o := Opener{DevDir: t.TempDir(), Mapper: fm}
	if _, err := o.Open(img, "d", Key{Secret: []byte("second"), Kind: Passphrase}); err != nil {
		t.Fatal(err)
	}
	_, err := o.Open(img, "e", Key{Secret: []byte("third"), Kind: KeyFile})
	if want := "e (LUKS2 " + img + "): no key slot matches the key file"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q (Role defaults to the dm name)", err, want)
	}
}

func TestOpenBadNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "..", "a b", strings.Repeat("x", 128)} {
		if _, err := (Opener{Mapper: &fakeMapper{}}).Open("/dev/null", name, Key{}); err == nil || !strings.Contains(err.Error(), "device name") {
			t.Errorf("%q: err = %v", name, err)
		}
	}
}

// TestOpenKernel maps a real volume with dm-crypt; it needs root, a loop
// device and device-mapper with dm-crypt in the host kernel.
func TestOpenKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	devs, _ := os.ReadFile("/proc/devices")
	if !strings.Contains(string(devs), "device-mapper") {
		t.Skip("the host kernel has no device-mapper (no 'device-mapper' in /proc/devices); the QEMU tests cover mapping")
	}
	secret := "kernel test"
	img := luksVolume(t, writeKey(t, secret), pbkdf2Opts...)
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	o := Opener{Role: "data", DevDir: t.TempDir()}
	path, err := o.Open(loop, "keel-unlock-test", Key{Secret: []byte(secret), Kind: KeyFile})
	if err != nil {
		t.Fatal(err) // on a kernel without dm-crypt, the message names the modules
	}
	defer func() { must(t, o.Close("keel-unlock-test")) }()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	size, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
	must(t, err)
	if size != 4<<20 {
		t.Errorf("mapped size %d, want 4 MiB", size)
	}
}

// TestOpenWithoutDeviceMapper runs the kernel mapper where the kernel has
// no device-mapper, as an initramfs that failed to load dm_mod would: the
// error names the volume and the modules, and nothing is left behind.
func TestOpenWithoutDeviceMapper(t *testing.T) {
	devs, _ := os.ReadFile("/proc/devices")
	if strings.Contains(string(devs), "device-mapper") {
		t.Skip("the host kernel has device-mapper; TestOpenKernel covers it")
	}
	secret := "no dm"
	img := luksVolume(t, writeKey(t, secret), pbkdf2Opts...)
	o := Opener{Role: "data", DevDir: t.TempDir()}
	_, err := o.Open(img, "keel-data", Key{Secret: []byte(secret), Kind: KeyFile})
	want := "data (LUKS2 " + img + "): creating dm-crypt device keel-data (needs the dm_crypt, xts and ecb modules; the kernel log says more): "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
	if entries, _ := os.ReadDir(o.DevDir); len(entries) != 0 {
		t.Errorf("left %v in the device directory", entries)
	}
}
