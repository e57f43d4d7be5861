// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// actions builds the payload's keel.test.write= and keel.test.cat= options.
func actions(t testing.TB, writes map[string]string, cats ...string) string {
	t.Helper()
	var opts []string
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range writes {
			if !yield(k) {
				return
			}
		}
	}) {
		w, err := report.WriteParam(p, writes[p])
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, w)
	}
	for _, c := range cats {
		opts = append(opts, "keel.test.cat="+c)
	}
	return strings.Join(opts, " ")
}

// boot runs one payload boot to power-off and returns what it printed.
func boot(t testing.TB, rd string, disk vm.Disk, cmdline string) (report.Report, keelreport.Report) {
	t.Helper()
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: cmdline})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	return r, bootReport(t, r)
}

// wantCat checks a cat the payload did: content, or missing when want is "".
func wantCat(t testing.TB, r report.Report, path, want string) {
	t.Helper()
	c, ok := r.Cat(path)
	switch {
	case !ok:
		t.Errorf("no cat of %s in the payload's report", path)
	case want == "" && !c.Missing:
		t.Errorf("%s = %q: want it gone", path, c.Content)
	case want != "" && c.Content != want:
		t.Errorf("%s = %+v: want %q", path, c, want)
	}
}

// seededTree is a payload root whose /var holds seed data.
func seededTree(t testing.TB, marker string) string {
	dir := payloadTree(t, marker)
	vm.WriteFile(t, dir, "var/lib/seed", "from the image")
	return dir
}

func mkfs(t testing.TB, tool string, sizeMiB int, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.img")
	if err := os.Truncate(createEmpty(t, p), int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	run(t, tool, append(args, p)...)
	return p
}

func createEmpty(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestDataPersistentBtrfs: an empty btrfs data partition gets its
// subvolumes and a seeded /var; /etc, /var and /home survive reboots with
// the persistent overlay; with overlay=tmpfs only /var and /home do; a new
// image in the slot starts with a fresh upper, the old one is pruned.
func TestDataPersistentBtrfs(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	img1 := seal(t, seededTree(t, "image-1"), "", "os-1")
	disk := abDisk(t, &img1, nil, vm.Part{Name: "data", SizeMiB: 130, Content: mkfs(t, "mkfs.btrfs", 128, "-q")})
	rd := initrd(t)

	write := actions(t, map[string]string{"/etc/p": "etc-1", "/var/p": "var-1", "/home/p": "home-1"}, "/var/lib/seed")
	r, br := boot(t, rd, disk, "slot=a "+write)
	wantCat(t, r, "/var/lib/seed", "from the image")
	if d := br.Data; d == nil || d.FSType != "btrfs" || !d.Seeded || !d.FreshUpper || len(d.Created) != 3 || br.Overlay != "persistent" {
		t.Fatalf("boot 1 data %+v overlay %s: want btrfs, 3 subvolumes created, /var seeded, a fresh upper, persistent overlay", br.Data, br.Overlay)
	}
	if m, ok := r.Mount("/"); !ok || !strings.Contains(m.Options, "upperdir=/run/keel/data/@overlay/a/os-1/upper") {
		t.Errorf("/ is %+v: want the upper under @overlay/a/os-1", m)
	}
	if m, ok := r.Mount("/var"); !ok || m.FSType != "btrfs" {
		t.Errorf("/var is %+v: want a bind from the btrfs data partition", m)
	}

	cats := []string{"/etc/p", "/var/p", "/home/p"}
	r, _ = boot(t, rd, disk, "slot=a overlay=tmpfs "+actions(t, nil, cats...))
	wantCat(t, r, "/etc/p", "")
	wantCat(t, r, "/var/p", "var-1")
	wantCat(t, r, "/home/p", "home-1")

	r, br = boot(t, rd, disk, "slot=a "+actions(t, nil, cats...))
	wantCat(t, r, "/etc/p", "etc-1")
	wantCat(t, r, "/var/p", "var-1")
	if br.Data.FreshUpper || br.Data.Seeded || len(br.Data.Created) != 0 {
		t.Errorf("boot 3 data %+v: want the existing upper, no seeding, nothing created", br.Data)
	}

	img2 := seal(t, seededTree(t, "image-2"), "", "os-2")
	writeSlot(t, disk, "a", img2)
	r, br = boot(t, rd, disk, "slot=a "+actions(t, nil, cats...))
	if r.Marker == nil || *r.Marker != "image-2" {
		t.Fatalf("marker %v: want the new image", r.Marker)
	}
	wantCat(t, r, "/etc/p", "")
	wantCat(t, r, "/var/p", "var-1")
	wantCat(t, r, "/home/p", "home-1")
	if !br.Data.FreshUpper || len(br.Data.Pruned) != 1 || !strings.Contains(br.Data.Pruned[0], "os-1") {
		t.Errorf("boot 4 data %+v: want a fresh upper and os-1's upper pruned", br.Data)
	}
}

// writeSlot puts a new sealed image into a slot's partitions.
func writeSlot(t testing.TB, disk vm.Disk, slot string, img sealed) {
	t.Helper()
	f, err := os.OpenFile(disk.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for part, src := range map[string]string{"root-" + slot: img.squashfs, "verity-" + slot: img.verity} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := disk.Part(t, part)
		if int64(len(b)) > p.Size {
			t.Fatalf("%s does not fit %s", src, part)
		}
		if _, err := f.WriteAt(b, p.Offset); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDataPreexistingSubvolumes uses subvolumes made beforehand as they are.
func TestDataPreexistingSubvolumes(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	data := mkfs(t, "mkfs.btrfs", 128, "-q")
	mnt := t.TempDir()
	if out, err := runErr("mount", "-o", "loop", data, mnt); err != nil {
		t.Skipf("cannot loop-mount btrfs on this host to prepare subvolumes: %v %s", err, out)
	}
	for _, sv := range []string{"@var", "@home"} {
		run(t, "btrfs", "-q", "subvolume", "create", filepath.Join(mnt, sv))
	}
	vm.WriteFile(t, mnt, "@var/pre", "kept")
	vm.WriteFile(t, mnt, "@home/user/notes", "mine")
	run(t, "umount", mnt)
	a := seal(t, payloadTree(t, "x"), "", "os")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 130, Content: data})
	r, br := boot(t, initrd(t), disk, "slot=a "+actions(t, nil, "/var/pre", "/home/user/notes"))
	wantCat(t, r, "/var/pre", "kept")
	wantCat(t, r, "/home/user/notes", "mine")
	if br.Data == nil || len(br.Data.Created) != 1 || filepath.Base(br.Data.Created[0]) != "@overlay" {
		t.Errorf("data %+v: want only @overlay created", br.Data)
	}
}

func runErr(name string, args ...string) (string, error) {
	b, err := execCommand(name, args...)
	return string(b), err
}

// TestDataExt4 keeps /var on an ext4 data partition with directories.
func TestDataExt4(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "x"), "", "os")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 33, Content: mkfs(t, "mkfs.ext4", 32, "-q", "-F")})
	rd := initrd(t)
	_, br := boot(t, rd, disk, "slot=a "+actions(t, map[string]string{"/var/e": "ext4"}))
	if br.Data == nil || br.Data.FSType != "ext4" || len(br.Data.Created) != 3 {
		t.Fatalf("data %+v: want ext4 with 3 directories created", br.Data)
	}
	r, _ := boot(t, rd, disk, "slot=a "+actions(t, nil, "/var/e"))
	wantCat(t, r, "/var/e", "ext4")
}

// luksData makes an ext4 filesystem encrypted in place as LUKS2 (offline
// reencryption: no device-mapper needed on the host).
func luksData(t testing.TB, key string, pbkdf ...string) string {
	t.Helper()
	return luksOver(t, "ext4", key, pbkdf...)
}

// luksSizeMiB is the size of luksOver's volume for a file system: 16 MiB
// of LUKS2 header and the file system (btrfs wants 109 MiB at least).
func luksSizeMiB(fs string) int {
	if fs == "btrfs" {
		return 144
	}
	return 48
}

// luksOver is luksData with the file system fs ("ext4", "btrfs"); with
// fs "" the volume holds zeros, no file system.
func luksOver(t testing.TB, fs, key string, pbkdf ...string) string {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "data.img")
	size := luksSizeMiB(fs)
	if err := os.Truncate(createEmpty(t, img), int64(size)<<20); err != nil {
		t.Fatal(err)
	}
	switch fs {
	case "ext4":
		run(t, "mkfs.ext4", "-q", "-F", img, fmt.Sprintf("%dM", size-16))
	case "btrfs":
		run(t, "mkfs.btrfs", "-q", "-f", "-b", fmt.Sprintf("%dM", size-16), img)
	case "":
	default:
		t.Fatalf("luksOver: no file system %q", fs)
	}
	args := append([]string{"reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "16M", "--key-file", keyFile, "-q"}, pbkdf...)
	run(t, "cryptsetup", append(args, img)...)
	return img
}

var pbkdf2 = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}

// luksKeyFile is the data partition's key and a file holding it, for
// mkinitrd --luks-keyfile.
func luksKeyFile(t testing.TB) (key, keyFile string) {
	t.Helper()
	key = "0123456789abcdef-keyfile"
	keyFile = filepath.Join(t.TempDir(), "luks.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, keyFile
}

// TestDataLUKSKeyfile unlocks the data partition with a baked key file.
func TestDataLUKSKeyfile(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key, keyFile := luksKeyFile(t)
	a := seal(t, payloadTree(t, "x"), "", "os")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 49, Content: luksData(t, key, pbkdf2...)})
	r, br := boot(t, initrd(t, "--luks-keyfile", keyFile), disk, "slot=a "+actions(t, map[string]string{"/var/l": "secret"}, "/var/l", "/proc/crypto"))
	wantCat(t, r, "/var/l", "secret")
	if br.Data == nil || !br.Data.Encrypted || br.Data.Device != "/dev/mapper/keel-data" || br.Data.FSType != "ext4" {
		t.Errorf("data %+v: want ext4 inside LUKS2 on /dev/mapper/keel-data", br.Data)
	}
	// The device mapper keeps the implementation it found when its
	// table was loaded: the CPU's (AES-NI, AVX2 under -cpu max), loaded
	// before it, not the kernel's generic C (kmod accelerations).
	c, _ := r.Cat("/proc/crypto")
	algs := procCrypto(c.Content)
	if a := inUse(algs, "xts(aes)"); a["module"] != "aesni_intel" {
		t.Errorf("dm-crypt uses %q (module %q) for xts(aes), want aesni_intel's (the AES-NI module loaded before its table)", a["driver"], a["module"])
	}
	wantCPUSHA256(t, algs)
}

// TestDataLUKSFirstSectorWiped: a LUKS2 data partition whose first
// sector was wiped (a stray dd) is known by its second header, unlocked
// from it and mounted, as cryptsetup opens it; it was taken for an
// unknown file system, and the boot went volatile without the user's
// data (found by a hunting helper).
func TestDataLUKSFirstSectorWiped(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key, keyFile := luksKeyFile(t)
	a := seal(t, payloadTree(t, "x"), "", "os")
	vol := luksData(t, key, pbkdf2...)
	f, err := os.OpenFile(vol, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 49, Content: vol})
	r, br := boot(t, initrd(t, "--luks-keyfile", keyFile), disk, "slot=a "+actions(t, map[string]string{"/var/l": "kept"}, "/var/l"))
	wantCat(t, r, "/var/l", "kept")
	if br.Data == nil || !br.Data.Encrypted || br.Data.FSType != "ext4" || br.Data.Volatile {
		t.Errorf("data %+v: want ext4 inside LUKS2, unlocked from its second header", br.Data)
	}
}

// TestDataLUKSWithoutFileSystemClosed: an encrypted data partition that
// unlocks but holds no file system boots volatile, and its dm-crypt device
// is removed (the booted system sees no keel-data among the dm devices);
// it used to stay open for the whole uptime, outside the shutdown's undo
// record.
func TestDataLUKSWithoutFileSystemClosed(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key, keyFile := luksKeyFile(t)
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 49, Content: luksOver(t, "", key, pbkdf2...)})
	names := []string{"/sys/class/block/dm-0/dm/name", "/sys/class/block/dm-1/dm/name", "/sys/class/block/dm-2/dm/name"}
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--luks-keyfile", keyFile), Disks: []string{disk.Path}, Cmdline: "slot=a " + actions(t, nil, names...)})
	m.Expect("BOOTING VOLATILE")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	if br := bootReport(t, r); br.Data == nil || !br.Data.Volatile {
		t.Fatalf("data %+v: want the partition given up, volatile", br.Data)
	}
	seen := 0
	for _, n := range names {
		if c, ok := r.Cat(n); ok && !c.Missing {
			seen++
			if strings.TrimSpace(c.Content) == "keel-data" {
				t.Errorf("%s is keel-data: the unlocked partition was left open", n)
			}
		}
	}
	if seen == 0 {
		t.Error("no dm device seen: the root's verity device should be one (the check above proves nothing)")
	}
}

// TestDataLUKSPassphrase types a wrong passphrase, then the right one, into
// the console prompt (Argon2id with small costs: TCG is slow); three wrong
// ones end in the emergency policy.
func TestDataLUKSPassphrase(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const pass = "correct horse"
	data := luksData(t, pass, "--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4")
	a := seal(t, payloadTree(t, "x"), "", "os")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 49, Content: data})
	rd := initrd(t)
	t.Run("wrong-then-right", func(t *testing.T) {
		m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "slot=a"})
		m.Expect("Passphrase for data (LUKS2 /dev/vda6): ")
		m.Send("not it\n")
		m.Expect("no key slot matches the passphrase")
		m.Expect("Passphrase for data")
		m.Send(pass + "\n")
		r := m.ExpectReport()
		m.ExpectPowerOff()
		if br := bootReport(t, r); br.Data == nil || !br.Data.Encrypted {
			t.Errorf("data %+v: want the LUKS2 volume unlocked", br.Data)
		}
		if strings.Contains(m.Output(), pass) {
			t.Error("the passphrase was echoed on the console")
		}
	})
	t.Run("three-wrong", func(t *testing.T) {
		m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "slot=a"})
		for i := 0; i < 3; i++ {
			m.Expect("Passphrase for data")
			m.Send("wrong\n")
		}
		m.Expect("keel: BOOT FAILED:")
		m.Expect("(3 tries)")
		shellWorks(t, m)
		m.Kill()
	})
}

// TestDataCorrupt: a data filesystem that cannot be mounted does not brick
// the machine: it boots volatile and says so on the console and in
// boot.json.
func TestDataCorrupt(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	data := mkfs(t, "mkfs.btrfs", 128, "-q")
	corrupt(t, data, 65536+0x100) // inside the superblock, past its magic: checksum fails
	a := seal(t, payloadTree(t, "x"), "", "os")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 130, Content: data})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "slot=a"})
	m.Expect("DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Data == nil || !br.Data.Volatile || br.Overlay != "tmpfs" || !r.RootWritable {
		t.Errorf("data %+v overlay %s: want a volatile boot on tmpfs", br.Data, br.Overlay)
	}
}

// TestVolatileSlotGivesDataBack: slot a's image cannot be used (its /var
// is a file, so seeding the data partition from it fails and a's attempt
// goes volatile; and it has no init, an image fault), slot b's is sound.
// b boots with the data partition, persistent, and the console says the
// partition was used again. It used to stay unmounted after a's attempt:
// b, the slot that works, booted volatile, without the machine's /etc,
// /var and /home, at every boot that tried a first.
func TestVolatileSlotGivesDataBack(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	broken := payloadTree(t, "image-a")
	for _, p := range []string{"sbin/init", "var"} {
		if err := os.RemoveAll(filepath.Join(broken, p)); err != nil {
			t.Fatal(err)
		}
	}
	vm.WriteFile(t, broken, "var", "not a directory")
	a := seal(t, broken, "", "img-a")
	b := seal(t, payloadTree(t, "image-b"), "", "img-b")
	disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 33, Content: mkfs(t, "mkfs.ext4", 32, "-q", "-F")})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: actions(t, map[string]string{"/var/kept": "b"})})
	m.Expect("keel: data partition /dev/vda6: used again for slot b")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "b" || br.Data == nil || br.Data.Volatile || br.Overlay != "persistent" {
		t.Errorf("slot %q, data %+v, overlay %s: want slot b with the data partition, persistent", br.Slot, br.Data, br.Overlay)
	}
	if len(br.Fallbacks) != 1 || br.Fallbacks[0].Slot != "a" {
		t.Errorf("fallbacks %+v: want slot a's failure", br.Fallbacks)
	}
	r, _ = boot(t, initrd(t), disk, "slot=b "+actions(t, nil, "/var/kept"))
	wantCat(t, r, "/var/kept", "b")
}
