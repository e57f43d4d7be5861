// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// luksAB is an A/B disk sealed by the release key with an encrypted data
// partition (PBKDF2 at 1000 iterations: TCG is slow) opened by pass, and an
// initramfs that trusts the key and has no key file: the passphrase is
// asked for on the console.
func luksAB(t testing.TB, pass string) (vm.Disk, string) {
	t.Helper()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	b := seal(t, payloadTree(t, "image-b"), key, "img-b")
	disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 49, Content: luksData(t, pass, pbkdf2...)})
	return disk, initrd(t, "--trust", key+".pub")
}

// unlockedBoot boots disk, types pass at the prompt, and returns the
// payload's report once it powered off; it must be slot a running image-a
// with the data partition unlocked.
func unlockedBoot(t testing.TB, rd string, disk vm.Disk, pass, cmdline string) (keelreport.Report, string) {
	t.Helper()
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: cmdline})
	m.Expect("Passphrase for data (LUKS2 /dev/vda6): ")
	m.Send(pass + "\n")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "a" || r.Marker == nil || *r.Marker != "image-a" || br.Data == nil || !br.Data.Encrypted || br.Data.Volatile {
		t.Fatalf("slot %q marker %v data %+v: want slot a (image-a) with the LUKS2 data partition", br.Slot, r.Marker, br.Data)
	}
	c, _ := r.Cat("/var/keel-datafault")
	return br, c.Content
}

// TestDataWrongPassphraseKeepsBootState: three wrong passphrases (no slot=)
// end in the emergency policy before a slot is chosen: the boot state is
// exactly as before (slotctl status --disk), and the next boot with the
// right passphrase boots the same slot with the data written earlier.
func TestDataWrongPassphraseKeepsBootState(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const pass = "correct horse"
	disk, rd := luksAB(t, pass)
	unlockedBoot(t, rd, disk, pass, actions(t, map[string]string{"/var/keel-datafault": "kept"}))
	before := diskStatus(t, disk.Path)
	if !before.Initialised {
		t.Fatalf("boot state after a normal boot: %+v, want it initialised (the comparison below would prove little)", before)
	}

	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "rd.emergency=poweroff"})
	for range 3 {
		m.Expect("Passphrase for data")
		m.Send("wrong\n")
	}
	m.Expect("keel: BOOT FAILED:")
	m.Expect("no key slot matches the passphrase (3 tries)")
	m.ExpectPowerOff()
	if out := m.Output(); strings.Contains(out, "slot a:") || strings.Contains(out, "root-a device") {
		t.Errorf("a slot was tried after the wrong passphrases:\n%s", out)
	}
	if after := diskStatus(t, disk.Path); !reflect.DeepEqual(before, after) {
		t.Errorf("boot state changed by a boot that failed to unlock the data:\nbefore %+v\nafter  %+v", before, after)
	}

	_, got := unlockedBoot(t, rd, disk, pass, actions(t, nil, "/var/keel-datafault"))
	if got != "kept" {
		t.Errorf("/var/keel-datafault = %q after the failed boot: want the data written before (%q)", got, "kept")
	}
}

// TestDataPassphraseTimeout: nobody types at the prompt; rd.luks.timeout
// ends it and the emergency policy applies, naming the option.
func TestDataPassphraseTimeout(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	disk, rd := luksAB(t, "correct horse")
	before := diskStatus(t, disk.Path)
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "rd.luks.timeout=3 rd.emergency=poweroff"})
	m.Expect("type its passphrase within 3s (rd.luks.timeout=3)")
	m.Expect("Passphrase for data (LUKS2 /dev/vda6): ")
	m.Expect("keel: BOOT FAILED:")
	m.Expect("no passphrase typed in time: waited 3s (rd.luks.timeout=3)")
	m.ExpectPowerOff()
	if after := diskStatus(t, disk.Path); !reflect.DeepEqual(before, after) {
		t.Errorf("boot state changed: before %+v, after %+v", before, after)
	}
}

// hotplugOptions adds a PCIe root port a disk can be hot-added to and an
// HMP monitor on a unix socket; it returns the socket's path.
func hotplugOptions(t testing.TB, o *vm.Options) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mon")
	o.QEMUArgs = append(o.QEMUArgs,
		"-device", "pcie-root-port,id=hp1,bus=pcie.0,chassis=1,slot=1",
		"-monitor", "unix:"+sock+",server=on,wait=off")
	return sock
}

// hotAdd plugs the raw image path into the running VM as a disk on the
// root port of hotplugOptions, through the HMP monitor: a QEMU device
// (virtio-blk-pci, nvme) whose drive is "late".
func hotAdd(t testing.TB, sock, path, device string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("QEMU monitor: %v", err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	prompt := func() string {
		var out strings.Builder
		for !strings.HasSuffix(out.String(), "(qemu) ") {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			b, err := r.ReadByte()
			if err != nil {
				t.Fatalf("QEMU monitor: %v after %q", err, out.String())
			}
			out.WriteByte(b)
		}
		return out.String()
	}
	prompt()
	for _, cmd := range []string{
		fmt.Sprintf("drive_add 0 if=none,id=late,format=raw,file=%s", strings.ReplaceAll(path, ",", ",,")),
		"device_add " + device + ",drive=late,id=latedisk,bus=hp1",
	} {
		if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
			t.Fatalf("QEMU monitor: %v", err)
		}
		if out := prompt(); strings.Contains(out, "Error") || strings.Contains(out, "error") {
			t.Fatalf("QEMU monitor %q: %s", cmd, out)
		}
	}
}

// lateDataDisk is an A/B disk without a data partition and a second disk
// holding only an ext4 data partition, to be hot-added.
func lateDataDisk(t testing.TB) (system, data vm.Disk, rd string) {
	t.Helper()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	system = abDisk(t, &a, nil)
	data = vm.NewDisk(t, "", []vm.Part{{Name: "data", SizeMiB: 40, Content: mkfs(t, "mkfs.ext4", 38, "-q", "-F")}})
	return system, data, initrd(t)
}

// bootWithLateData boots system with cmdline, hot-adds data as a virtio
// disk once the init says it waits for the data partition, and returns the
// boot report.
func bootWithLateData(t *testing.T, system, data vm.Disk, rd, cmdline string) keelreport.Report {
	return bootWithLateDataOn(t, system, data, rd, cmdline, "virtio-blk-pci", "/dev/vdb1")
}

// bootWithLateDataOn is bootWithLateData with the data disk added as the
// QEMU device given, its partition expected at node.
func bootWithLateDataOn(t *testing.T, system, data vm.Disk, rd, cmdline, device, node string) keelreport.Report {
	t.Helper()
	o := vm.Options{Initrd: rd, Disks: []string{system.Path}, Cmdline: cmdline}
	sock := hotplugOptions(t, &o)
	m := vm.Start(t, o)
	m.Expect("waiting up to")
	m.Expect("for the data partition PARTLABEL=data")
	hotAdd(t, sock, data.Path, device)
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Data == nil || br.Data.Volatile || br.Data.Device != node || br.Overlay != "persistent" {
		t.Errorf("data %+v overlay %s: want the hot-added %s used, persistent", br.Data, br.Overlay, node)
	}
	wantCat(t, r, "/var/keel-late", "late")
	return br
}

// TestDataLateDiskIsWaitedFor: data= names a partition on a disk that
// appears only after the init started waiting (hot-plugged through QEMU's
// monitor); the init waits for it within rd.timeout and boots with it.
func TestDataLateDiskIsWaitedFor(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	system, data, rd := lateDataDisk(t)
	bootWithLateData(t, system, data, rd, "slot=a rd.timeout=120 data=PARTLABEL=data "+
		actions(t, map[string]string{"/var/keel-late": "late"}, "/var/keel-late"))
}

// TestDataLateNVMeDisk: the data partition is on an NVMe disk hot-added
// while the init waits for it, on a machine that had no NVMe controller
// when the storage drivers were chosen (docs/boot-sequence.md, "Storage
// drivers by device"): the controller's uevent has the init load nvme, and
// the boot uses the partition. The init that stopped reading the buses
// once its loads returned never loaded nvme here.
func TestDataLateNVMeDisk(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	system, data, rd := lateDataDisk(t)
	bootWithLateDataOn(t, system, data, rd, "slot=a rd.timeout=120 data=PARTLABEL=data "+
		actions(t, map[string]string{"/var/keel-late": "late"}, "/var/keel-late"), "nvme,serial=late", "/dev/nvme0n1p1")
}

// TestDataSeenBeforeMissingIsLoud: the default data partition is looked
// for on the system disk only (waited for with it). Once a boot has used a
// data partition (the boot state records it), a boot that finds none —
// here its GPT label was changed — is a loud volatile boot on the console
// (even with quiet) and in boot.json, not the quiet "no data partition" of
// a machine that never had one.
func TestDataSeenBeforeMissingIsLoud(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 40, Content: mkfs(t, "mkfs.ext4", 38, "-q", "-F")})
	rd := initrd(t)
	if _, br := boot(t, rd, disk, ""); br.Data == nil || br.Data.Volatile {
		t.Fatalf("first boot: data %+v, want the data partition used", br.Data)
	}
	var st struct {
		DataSeen bool `json:"data_seen"`
	}
	if out := run(t, keelTools(t).slotctl, "status", "--json", "--disk", disk.Path); json.Unmarshal([]byte(out), &st) != nil || !st.DataSeen {
		t.Fatalf("slotctl status after a boot with data: %s; want data_seen", out)
	}
	run(t, "sfdisk", "--part-label", disk.Path, "6", "not-data")
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "quiet"})
	m.Expect("keel: WARNING: DATA PARTITION PARTLABEL=data NOT USED, BOOTING VOLATILE")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Data == nil || !br.Data.Volatile || br.Overlay != "tmpfs" {
		t.Errorf("data %+v overlay %s: want a volatile boot", br.Data, br.Overlay)
	}
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "an earlier boot used a data partition, none is here now") {
		t.Errorf("boot.json warnings %q: want why the boot is volatile", br.Warnings)
	}
}

// TestDataHalfBoundFallsBackCompletely: the image's /home is a file, so the
// /home bind fails after the persistent overlay and the /var bind
// succeeded. The volatile fallback must be complete: nothing of the data
// partition stays mounted (no /var bind, no upper on it, not even
// /run/keel/data), and the console and boot.json say so.
func TestDataHalfBoundFallsBackCompletely(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	tree := payloadTree(t, "image-a")
	if err := os.RemoveAll(filepath.Join(tree, "home")); err != nil {
		t.Fatal(err)
	}
	vm.WriteFile(t, tree, "home", "a file where /home should be")
	a := seal(t, tree, "", "img-a")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 40, Content: mkfs(t, "mkfs.ext4", 38, "-q", "-F")})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "slot=a quiet " + actions(t, map[string]string{"/var/keel-volatile": "x"})})
	m.Expect("keel: WARNING: DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Data == nil || !br.Data.Volatile || br.Overlay != "tmpfs" || len(br.Data.Binds) != 0 || br.Data.Upper != "" {
		t.Errorf("data %+v overlay %s: want a volatile boot on tmpfs without binds or upper", br.Data, br.Overlay)
	}
	for _, mnt := range r.Mounts {
		if mnt.Source == "/dev/vda6" || strings.Contains(mnt.Options, "/run/keel/data") {
			t.Errorf("the data partition is still mounted after the volatile fallback: %+v", mnt)
		}
	}
	if !strings.Contains(strings.Join(br.Warnings, "\n"), "BOOTING VOLATILE") {
		t.Errorf("boot.json warnings %q: want the volatile warning", br.Warnings)
	}
}

// TestDataUpperHidingInitGoesVolatile: the persistent upper of the booted
// image holds a directory where the image has /sbin/init (as a whiteout or
// a package removal in the running system would hide it). The image is not
// at fault: the boot goes volatile over the image alone, loudly, and the
// slot stays bootable; it used to fail as an image fault, which retires a
// slot that works (or, for the only slot, ends every boot in emergency).
//
// The same for an upper whose /sbin is a symlink to / (the init's lookup
// went through the initramfs's root and found keel's /init there, and the
// exec after the switch failed: a counted try, a reboot, at every boot),
// one whose /var is a symlink to / (the bind of @var would have followed
// it from the initramfs's root), and an upper directory that is itself a
// symlink to / (the overlay's upper would have been the initramfs's root:
// every change lost at shutdown, silently).
func TestDataUpperHidingInitGoesVolatile(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	for _, tc := range []struct{ name, link, why string }{
		{"directory", "", "persistent upper layer hides it"},
		{"sbin-symlink", "upper/sbin", "persistent upper layer hides it"},
		{"var-symlink", "upper/var", "the mount point /var in the new root is a symlink, expected a directory"},
		{"upper-symlink", "upper", "img-a/upper is a symlink, expected a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dirs := []string{"@overlay/a/img-a/work", "@var", "@home"}
			if tc.link != "upper" {
				dirs = append(dirs, "@overlay/a/img-a/upper")
			}
			if tc.link == "" {
				dirs = append(dirs, "@overlay/a/img-a/upper/sbin/init")
			}
			for _, d := range dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.link != "" {
				if err := os.Symlink("/", filepath.Join(dir, "@overlay/a/img-a", tc.link)); err != nil {
					t.Fatal(err)
				}
			}
			disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
			br, _ := volatileBoot(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "quiet"}, "keel: WARNING: DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
			if !strings.Contains(strings.Join(br.Warnings, "\n"), tc.why) {
				t.Errorf("boot.json warnings %q: want why the data partition was not used (%s)", br.Warnings, tc.why)
			}
			if s := diskStatus(t, disk.Path).slot(t, "a"); s.Priority == 0 || s.Reason != "" {
				t.Errorf("slot a after the boot: %+v: want it still bootable, with no fault recorded", s)
			}
		})
	}
}

// TestImageHomeLink: an image laid out as OSTree lays it out, with its
// own /home -> var/home, has @home bound where that link leads inside the
// new root (/var/home, on the @var just bound), for a relative and an
// absolute link alike; the absolute one used to be followed from the
// initramfs's root, where /var/home does not exist, and every boot went
// volatile. A data partition whose @var holds home -> ../sbin (written by
// whoever held the disk, or by root on the running system) used to have
// @home mounted over the image's /sbin, and an init of its own in @home
// ran as PID 1 of a verified boot; the boot now goes volatile, naming the
// link, over the image alone, and the slot keeps no fault. The same holds
// for the move of /run into the new root behind an image's /run ->
// var/run: the initramfs's /run was moved over the image's /sbin, and the
// exec of the init failed after the switch. A /var/home that neither the
// image nor @var has is made by the bind, as a missing mount point always
// was.
func TestImageHomeLink(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	for _, tc := range []struct {
		name, at, link, varLink, why string
		bare                         bool // neither the image's /var nor @var has at: the bind makes it
	}{ // else the image's /var has at in it (its own /run -> var/run boots alone)
		{name: "relative", at: "home", link: "var/home"},
		{name: "absolute", at: "home", link: "/var/home"},
		{name: "var-home-missing", at: "home", link: "var/home", bare: true},
		{name: "data-partition-link", at: "home", link: "var/home", varLink: "../sbin", why: "/var/home in the new root is a symlink the image does not have there"},
		{name: "run-data-partition-link", at: "run", link: "var/run", varLink: "../sbin", why: "/var/run in the new root is a symlink the image does not have there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tree := payloadTree(t, "image-a")
			if err := os.Remove(filepath.Join(tree, tc.at)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.link, filepath.Join(tree, tc.at)); err != nil {
				t.Fatal(err)
			}
			if !tc.bare {
				if err := os.MkdirAll(filepath.Join(tree, "var", tc.at), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			a := seal(t, tree, "", "img-a")
			dir := t.TempDir()
			for _, d := range []string{"@overlay", "@var", "@home"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			vm.WriteFile(t, dir, "@home/mine", "mine")
			if tc.varLink == "" && !tc.bare {
				if err := os.Mkdir(filepath.Join(dir, "@var", tc.at), 0o755); err != nil {
					t.Fatal(err)
				}
			} else if tc.varLink != "" {
				if err := os.Symlink(tc.varLink, filepath.Join(dir, "@var", tc.at)); err != nil {
					t.Fatal(err)
				}
				// What would run as PID 1 if @home were mounted over /sbin.
				vm.Install(t, vm.BuildPayload(t), dir, "@home/init")
			}
			disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
			opts := vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "quiet"}
			if tc.why != "" {
				br, _ := volatileBoot(t, opts, "keel: WARNING: DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
				if !strings.Contains(strings.Join(br.Warnings, "\n"), tc.why) {
					t.Errorf("boot.json warnings %q: want why the data partition was not used (%s)", br.Warnings, tc.why)
				}
				if s := diskStatus(t, disk.Path).slot(t, "a"); s.Priority == 0 || s.Reason != "" {
					t.Errorf("slot a after the boot: %+v: want it still bootable, with no fault recorded", s)
				}
				return
			}
			opts.Cmdline += " keel.test.cat=/home/mine"
			m := vm.Start(t, opts)
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			if marker(r) != "image-a" || br.Overlay != "persistent" || br.Data == nil || br.Data.Volatile || fmt.Sprint(br.Data.Binds) != "[/var /var/home]" {
				t.Errorf("marker %q overlay %q data %+v: want image-a on its persistent upper, @home bound at /var/home", marker(r), br.Overlay, br.Data)
			}
			if c, _ := r.Cat("/home/mine"); c.Content != "mine" {
				t.Errorf("/home/mine in the booted system: %+v: want @home's file, through the image's link", c)
			}
		})
	}
}

// TestDataExt4ErrorsPanicGoesVolatile: an ext4 data partition whose
// superblock says errors=panic (tune2fs -e panic: an image builder's
// choice, or whoever held the disk) and whose @home directory's inode is
// corrupt (a bad checksum: an aging flash's bit flip). keel mounts it with
// errors=remount-ro, so the corruption found while the boot prepares the
// layout is an error, not a kernel panic that would end every boot the same
// way: the boot goes volatile, loudly, and the data partition is left as it
// was (@var's file still there, read on the host).
func TestDataExt4ErrorsPanicGoesVolatile(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	dir := t.TempDir()
	for _, d := range []string{"@var", "@home", "@overlay"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vm.WriteFile(t, dir, "@var/kept", "mine")
	data := vm.MkExt4(t, dir, 16, "")
	run(t, "tune2fs", "-e", "panic", data)
	corruptInode(t, data, "/@home")
	disk := abDisk(t, &a, nil, vm.Part{Name: "data", SizeMiB: 17, Content: data})
	br, _ := volatileBoot(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "quiet"}, "keel: WARNING: DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE")
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "@home") || !strings.Contains(w, "metadata corrupt") {
		t.Errorf("boot.json warnings %q: want @home named, and the corruption", w)
	}
	part := extractPart(t, disk, "data")
	if got := run(t, "debugfs", "-R", "cat /@var/kept", part); !strings.Contains(got, "mine") {
		t.Errorf("@var/kept on the data partition after the boot: %q: want it kept", got)
	}
}

// ext4BlockSize is the block size of the ext4 image img, in bytes.
func ext4BlockSize(t testing.TB, img string) int64 {
	t.Helper()
	bs := strings.TrimSpace(run(t, "sh", "-c", `dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Block size: *//p'`, "sh", img))
	var size int64
	if _, err := fmt.Sscan(bs, &size); err != nil || size <= 0 {
		t.Fatalf("block size of %s: %q: %v", img, bs, err)
	}
	return size
}

// ext4Blocks is where the data blocks of path are in the ext4 image img:
// their byte offsets in img, and the block size.
func ext4Blocks(t testing.TB, img, path string) ([]int64, int64) {
	t.Helper()
	size := ext4BlockSize(t, img)
	out := strings.TrimSpace(run(t, "debugfs", "-R", "blocks "+path, img))
	var offs []int64
	// The last line: debugfs names itself on stderr first.
	for _, f := range strings.Fields(out[strings.LastIndex(out, "\n")+1:]) {
		var n int64
		if _, err := fmt.Sscan(f, &n); err != nil {
			t.Fatalf("debugfs blocks %s: %q: %v", path, out, err)
		}
		offs = append(offs, n*size)
	}
	if len(offs) == 0 {
		t.Fatalf("debugfs blocks %s: %q: no blocks", path, out)
	}
	return offs, size
}

// corruptInode changes one byte (the access time) of the inode of path in
// the ext4 image img, leaving its checksum stale: the kernel's read of the
// inode fails the check (metadata_csum, mkfs.ext4's default).
func corruptInode(t testing.TB, img, path string) {
	t.Helper()
	out := run(t, "debugfs", "-R", "imap "+path, img)
	var block, offset int64
	i := strings.Index(out, "located at block")
	if i < 0 {
		t.Fatalf("debugfs imap %s: %q: no location", path, out)
	}
	if _, err := fmt.Sscanf(out[i:], "located at block %d, offset %v", &block, &offset); err != nil {
		t.Fatalf("debugfs imap %s: %q: %v", path, out, err)
	}
	size := ext4BlockSize(t, img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	at := block*size + offset + 8
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	if out, _ := runErr("debugfs", "-R", "stat "+path, img); !strings.Contains(out, "checksum does not match") {
		t.Fatalf("debugfs stat %s after the change: %q: want a checksum error", path, out)
	}
}

// TestEtcMergeFailureRetried: the first boot of a new image (slot a, fresh
// upper) whose /etc merge fails — the last good image's upper holds a file
// where its etc/ should be — says so, boots over a tmpfs upper with the
// data partition's /var still bound, and makes no upper: the next boot
// merges again (it used to commit an empty upper, so the merge never ran
// again and the next update pruned the machine's configuration).
func TestEtcMergeFailureRetried(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	b := seal(t, payloadTree(t, "image-old"), "", "img-old")
	dir := t.TempDir()
	vm.WriteFile(t, dir, "@overlay/b/img-old/upper/etc", "a file where the old upper's etc/ should be")
	for _, d := range []string{"@overlay/b/img-old/work", "@var", "@home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
	slotctlDisk(t, disk.Path, "mark-good", "b") // the last good image: b/img-old
	slotctlDisk(t, disk.Path, "set-next", "a")
	rd := initrd(t)
	for boot := 1; boot <= 2; boot++ {
		m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "quiet"})
		m.Expect("keel: WARNING: /etc merge from slot b (image img-old) FAILED")
		m.Expect("this boot's upper layer is tmpfs, and the merge is tried again at the next boot")
		r := m.ExpectReport()
		m.ExpectPowerOff()
		br := bootReport(t, r)
		if marker(r) != "image-a" || br.Slot != "a" || br.Overlay != "tmpfs" || br.Data == nil || br.Data.Volatile || br.Data.Upper != "" || len(br.Data.Binds) == 0 {
			t.Errorf("boot %d: marker %q slot %q overlay %q data %+v: want image-a over tmpfs with the data partition's binds", boot, marker(r), br.Slot, br.Overlay, br.Data)
		}
		if br.EtcMerge == nil || !strings.Contains(br.EtcMerge.Error, "expected a directory") {
			t.Errorf("boot %d: etc_merge %+v: want the failure", boot, br.EtcMerge)
		}
	}
}

// volatileBoot boots opts, waits for want on the console and for the
// payload's report, and checks that slot a's image-a booted volatile (over
// tmpfs, the data partition not used). It returns boot.json and the console.
func volatileBoot(t *testing.T, opts vm.Options, want string) (keelreport.Report, string) {
	t.Helper()
	m := vm.Start(t, opts)
	m.Expect(want)
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if marker(r) != "image-a" || br.Slot != "a" || br.Data == nil || !br.Data.Volatile || br.Overlay != "tmpfs" {
		t.Errorf("marker %q slot %q data %+v overlay %q: want image-a booted volatile from slot a", marker(r), br.Slot, br.Data, br.Overlay)
	}
	return br, m.Output()
}

// TestRetriedUpdateMergesAgain: an update whose trial failed and that is
// tried again (the same image id, B1, still in slot b) merges /etc anew
// from the last good image, with what the operator changed there after the
// rollback. The last good image's boot sets the failed trial's upper
// aside (kept, under @overlay/b/.set-aside). The retried trial used to
// reuse its first upper, with the /etc of before the rollback, and once b
// was marked good the next update pruned the upper that held the
// operator's change.
func TestRetriedUpdateMergesAgain(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "A1")
	b := seal(t, payloadTree(t, "image-b"), "", "B1")
	disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 33, Content: mkfs(t, "mkfs.ext4", 32, "-q")})
	rd := initrd(t)
	slotctlDisk(t, disk.Path, "mark-good", "a") // the last good image: a/A1
	const conf = "/etc/keel-local.conf"
	bootSlot := func(n int, slot, cmdline string) (report.Report, keelreport.Report) {
		t.Helper()
		r, br := boot(t, rd, disk, cmdline)
		if br.Slot != slot || br.Overlay != "persistent" || br.Data == nil || br.Data.Volatile {
			t.Fatalf("boot %d: slot %q overlay %q data %+v: want slot %s over its persistent upper", n, br.Slot, br.Overlay, br.Data, slot)
		}
		return r, br
	}

	bootSlot(1, "a", actions(t, map[string]string{conf: "before the update"}))
	slotctlDisk(t, disk.Path, "set-next", "b")
	r, br := bootSlot(2, "b", actions(t, nil, conf))
	wantCat(t, r, conf, "before the update")
	if m := br.EtcMerge; m == nil || m.FromImage != "A1" || m.Error != "" {
		t.Errorf("boot 2 (b's first trial): etc_merge %+v: want a merge from A1", m)
	}

	slotctlDisk(t, disk.Path, "mark-bad", "b") // the trial failed: back to a
	_, br = bootSlot(3, "a", actions(t, map[string]string{conf: "after the rollback"}))
	if want := "/run/keel/data/@overlay/b/.set-aside/B1"; len(br.Data.SetAside) != 1 || br.Data.SetAside[0] != want {
		t.Errorf("boot 3 (the last good image): set_aside %q, want [%s]", br.Data.SetAside, want)
	}

	slotctlDisk(t, disk.Path, "set-next", "b") // the same update, tried again
	r, br = bootSlot(4, "b", actions(t, nil, conf))
	wantCat(t, r, conf, "after the rollback")
	if m := br.EtcMerge; !br.Data.FreshUpper || m == nil || m.FromImage != "A1" {
		t.Errorf("boot 4 (b's second trial): fresh upper %v, etc_merge %+v: want a fresh upper merged from A1", br.Data.FreshUpper, m)
	}
}

// updateDisk is an A/B disk with image A2 in slot a and B1 in slot b, and
// an ext4 data partition holding an upper for each SLOT/ID of uppers whose
// conf (a path in /etc) holds the text given, and the files given (a path
// on the partition → its bytes).
func updateDisk(t *testing.T, conf string, uppers map[string]string, files map[string]string) vm.Disk {
	t.Helper()
	a := seal(t, payloadTree(t, "image-a"), "", "A2")
	b := seal(t, payloadTree(t, "image-b"), "", "B1")
	dir := t.TempDir()
	for p, b := range files {
		vm.WriteFile(t, dir, p, b)
	}
	dirs := []string{"@var", "@home"}
	for u, text := range uppers {
		vm.WriteFile(t, dir, "@overlay/"+u+"/upper"+conf, text)
		dirs = append(dirs, "@overlay/"+u+"/work")
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
}

// TestMemoryCountedBootMakesNoEmptyUpper: the first boot of a new image
// (a/A2, set next after b/B1 was marked good) cannot read the bootstate
// partition (QEMU's blkdebug fails both record copies with EIO: counting in
// memory), so the last good image is unknown. It says so and runs over
// tmpfs with /var and /home bound, making no upper; the next boot, with the
// boot state, merges B1's /etc. It used to make A2 an empty upper, never
// merged again.
func TestMemoryCountedBootMakesNoEmptyUpper(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const conf = "/etc/keel-local.conf"
	disk := updateDisk(t, conf, map[string]string{"b/B1": "the machine's configuration"}, nil)
	slotctlDisk(t, disk.Path, "mark-good", "b") // the last good image: b/B1
	slotctlDisk(t, disk.Path, "set-next", "a")
	rd := initrd(t)
	m := vm.Start(t, vm.Options{Initrd: rd, Cmdline: actions(t, nil, conf), QEMUArgs: unreadableBootState(t, disk)})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "a" || br.Overlay != "tmpfs" || br.Data == nil || br.Data.Volatile || br.Data.Upper != "" || len(br.Data.Binds) == 0 {
		t.Errorf("boot 1 (bootstate unreadable): slot %q overlay %q data %+v: want a over tmpfs with the data partition's binds", br.Slot, br.Overlay, br.Data)
	}
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "the bootstate partition cannot be used in this boot, so the image last marked good") {
		t.Errorf("boot 1 warnings %q: want why there is no upper", br.Warnings)
	}
	wantCat(t, r, conf, "")

	r, br = boot(t, rd, disk, actions(t, nil, conf))
	if br.Slot != "a" || br.Overlay != "persistent" || br.EtcMerge == nil || br.EtcMerge.FromImage != "B1" {
		t.Errorf("boot 2: slot %q overlay %q etc_merge %+v: want a persistent upper merged from B1", br.Slot, br.Overlay, br.EtcMerge)
	}
	wantCat(t, r, conf, "the machine's configuration")
}

// TestNoLastGoodMergesFromTheOtherSlot: a boot state that reads but names
// no image last marked good (here: slotctl set-next on a blank bootstate
// partition; in the field a version 1 record, or a bootstate partition
// flashed blank while the data partition was kept), and a data partition
// holding the upper of the image slot a held before (A1) and the upper of
// b's image (B1) with the machine's configuration. The first boot of a's
// new image A2 merges /etc from B1, the image slot b's header names, says
// so, and prunes A1's upper as always. It used to make A2's upper empty:
// the configuration gone from /.
func TestNoLastGoodMergesFromTheOtherSlot(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	const conf = "/etc/keel-local.conf"
	disk := updateDisk(t, conf, map[string]string{"a/A1": "slot a's old image", "b/B1": "the machine's configuration"}, nil)
	slotctlDisk(t, disk.Path, "set-next", "a") // no image was ever marked good
	if lg := diskStatus(t, disk.Path).LastGood; lg != "" {
		t.Fatalf("last good %q before the boot: want none", lg)
	}
	r, br := boot(t, initrd(t), disk, actions(t, nil, conf))
	if br.Slot != "a" || br.Overlay != "persistent" || br.EtcMerge == nil || br.EtcMerge.FromImage != "B1" || len(br.Data.Pruned) != 1 || !strings.HasSuffix(br.Data.Pruned[0], "/a/A1") {
		t.Errorf("slot %q overlay %q etc_merge %+v pruned %q: want a persistent upper merged from B1, A1's upper pruned", br.Slot, br.Overlay, br.EtcMerge, br.Data.Pruned)
	}
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "the boot state names no image last marked good: the /etc merge reads the upper of B1 in slot b") {
		t.Errorf("warnings %q: want the merge's source named", br.Warnings)
	}
	wantCat(t, r, conf, "the machine's configuration")
}

// TestBlankBootStateMergesFromTheCopy: the bootstate partition is blank
// (flashed anew) and slot a rewritten with A2, the data partition kept:
// its copy of the boot state names a/A1, the image slot a held, as last
// good, and A1's upper holds the machine's configuration; b/B1's is older.
// A2's first boot keeps A1's upper from pruning and merges /etc from it.
// Without the copy's guard, A1's upper was pruned first and the older
// configuration of B1 merged instead.
func TestBlankBootStateMergesFromTheCopy(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	c := bootstate.DefaultState()
	c.LastGood = bootstate.LastGood{Slot: "a", ImageID: "A1"}
	const conf = "/etc/keel-local.conf"
	disk := updateDisk(t, conf, map[string]string{"a/A1": "the machine's configuration", "b/B1": "an older configuration"},
		map[string]string{bootstate.CopyName: string(bootstate.MarshalRecord(c))})
	r, br := boot(t, initrd(t), disk, actions(t, nil, conf))
	if br.Slot != "a" || br.Overlay != "persistent" || br.EtcMerge == nil || br.EtcMerge.FromSlot != "a" || br.EtcMerge.FromImage != "A1" || len(br.Data.Pruned) != 0 {
		t.Errorf("slot %q overlay %q etc_merge %+v pruned %q: want a persistent upper merged from a/A1, nothing pruned", br.Slot, br.Overlay, br.EtcMerge, br.Data.Pruned)
	}
	wantCat(t, r, conf, "the machine's configuration")
}

// TestBlankBootStateBootsTheCopysLastGood: the bootstate partition holds
// no valid record (both records damaged, or flashed blank) while the data
// partition's copy of the boot state names b/B1, still in slot b, as last
// good, with a/A2's older upper on the partition too. The boot starts
// durable counting from the copy: b boots over its own upper, the
// machine's configuration, and the bootstate partition holds the copy's
// last good image and b's state again, a (for which the copy names no
// image) a trial below b. The defaults booted a over the older configuration; its
// mark-good made A2 the last good image and the next update lost B1's.
// Then b's image is corrupted: after its limit of unconfirmed boots, a is
// tried.
func TestBlankBootStateBootsTheCopysLastGood(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	c := bootstate.State{Seq: 30, RollbackFloor: 0, DataSeen: true, Initialised: true,
		LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"},
		Slots:    [2]bootstate.SlotState{{Priority: 1, Good: true}, {Priority: 2, Good: true}}}
	const conf = "/etc/keel-local.conf"
	disk := updateDisk(t, conf, map[string]string{"a/A2": "an older configuration", "b/B1": "the machine's configuration"},
		map[string]string{bootstate.CopyName: string(bootstate.MarshalRecord(c))})
	rd := initrd(t)
	r, br := boot(t, rd, disk, actions(t, nil, conf))
	if br.Slot != "b" || br.Overlay != "persistent" || br.Data == nil || !strings.HasSuffix(br.Data.Upper, "/b/B1") || br.EtcMerge != nil {
		t.Errorf("slot %q overlay %q data %+v etc_merge %+v: want b over its own upper b/B1, no merge", br.Slot, br.Overlay, br.Data, br.EtcMerge)
	}
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "boot counting starts again from the copy of the boot state on the data partition") {
		t.Errorf("warnings %q: want the restored state said", br.Warnings)
	}
	wantCat(t, r, conf, "the machine's configuration")
	if s := diskStatus(t, disk.Path); s.LastGood != "b/B1" || !s.Initialised || s.slot(t, "b").Unconfirmed != 1 || !s.slot(t, "b").Good ||
		s.slot(t, "a").Good || s.slot(t, "a").Tries != bootstate.DefaultTries || s.slot(t, "a").Priority >= s.slot(t, "b").Priority ||
		s.slot(t, "a").Reason != bootstate.ReasonRestoredGood {
		t.Fatalf("the bootstate partition after the boot: %+v: want the copy's last good b first, its boot counted, a a trial below it, marked good in the copy", s)
	}
	// b's image now restarts the machine at every boot (a corrupt block
	// in its inode table, restart_on_corruption): its boots go
	// unconfirmed, and at the limit a, a trial since the restore though it
	// may hold the image that worked before, is tried, its try counted. b
	// used to boot for ever, a never tried (the copy names no image for a).
	//
	// The restart comes in the initramfs (the lookup of /sbin/init reads
	// the inode table), after the data partition was mounted: two such
	// boots leave it alone in the third, which prefers the good slot and
	// demotes nothing (its own restart, with the data partition left
	// alone, ends that); the next boot, with it, tries a.
	root := disk.Part(t, "root-b")
	corrupt(t, disk.Path, root.Offset+inodeTableStart(t, disk.Path, root.Offset))
	for i := 2; i <= bootstate.DefaultMaxUnconfirmed+1; i++ {
		m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}})
		if i > bootstate.DefaultMaxUnconfirmed {
			m.Expect("DATA PARTITION /dev/vda6 NOT USED")
		}
		m.Expect("keel: slot b:")
		m.ExpectReboot()
	}
	r, br = boot(t, rd, disk, "")
	if marker(r) != "image-a" || br.Slot != "a" || br.Demoted != "b" || !strings.Contains(br.SlotReason, "b demoted") {
		t.Errorf("marker %q slot %q demoted %q reason %q: want a tried, b demoted", marker(r), br.Slot, br.Demoted, br.SlotReason)
	}
	if s := diskStatus(t, disk.Path); !s.slot(t, "b").Good || s.slot(t, "a").Tries != bootstate.DefaultTries-1 || s.slot(t, "a").Priority <= s.slot(t, "b").Priority {
		t.Errorf("the bootstate partition after a's try: %+v: want b good below a, a's try counted", s)
	}
}

// unreadableBootState gives the QEMU arguments that attach disk with both
// of its boot-state record copies failing every read with EIO (blkdebug):
// the init counts in memory, the state unknown rather than absent.
func unreadableBootState(t *testing.T, disk vm.Disk) []string {
	t.Helper()
	bs := disk.Part(t, "bootstate").Offset / 512
	return failingReads(t, disk.Path, []int64{bs, bs + 64<<10/512}, 0) // both record copies
}

// TestMemoryCountedBootFromDataCopy: the bootstate partition cannot be
// read (blkdebug EIO on both record copies), and the data partition holds
// the copy of the boot state that slotctl keeps there. Boot counting in
// memory starts from it, not from the defaults, which boot slot a:
//   - a was retired (its image crashed after switch_root), b is the last
//     good image: b boots. It used to boot a, which crashed again, at
//     every boot, for ever;
//   - a is an update on trial above the good b: b boots, since a try of a
//     could not be counted and a crashing trial would boot for ever; a is
//     held back, and the update is tried first again once the bootstate
//     partition is read;
//   - the same, with b's header destroyed: b fails in the initramfs and the
//     held-back a boots, as it would from the defaults (never an emergency
//     where the defaults boot);
//   - a on trial, both record copies giving back other bytes (no EIO:
//     refused as foreign): the state was lost, not absent, and b boots
//     from the copy. The defaults booted a at every boot.
func TestMemoryCountedBootFromDataCopy(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	// The copy's b has reached the limit of unconfirmed boots, and its a
	// carries a restore's mark: a good slot is not demoted below a trial
	// whose try cannot be counted.
	good := bootstate.SlotState{Priority: 1, Good: true, Unconfirmed: bootstate.DefaultMaxUnconfirmed}
	trial := bootstate.SlotState{Priority: 2, Tries: 3, Reason: bootstate.ReasonRestoredGood}
	for name, tc := range map[string]struct {
		slotA   bootstate.SlotState
		breakB  bool
		garbage bool   // both record copies give back other bytes (no EIO): refused as foreign
		want    string // the slot that boots
		warning string
	}{
		"a-retired":           {slotA: bootstate.SlotState{Reason: bootstate.ReasonTriesExhausted}, want: "b"},
		"a-on-trial":          {slotA: trial, want: "b", warning: "slot a, not yet good, is tried only if the good slot fails in this boot"},
		"a-on-trial-b-broken": {slotA: trial, breakB: true, want: "a", warning: "slot a, not yet good, is tried only if the good slot fails in this boot"},
		// The defaults booted a (priority 2) at every boot, the copy
		// unread: the state was taken for absent.
		"a-on-trial-garbage": {slotA: trial, garbage: true, want: "b", warning: "boot state was lost, not absent"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := seal(t, payloadTree(t, "image-a"), "", "A2")
			b := seal(t, payloadTree(t, "image-b"), "", "B1")
			dir := t.TempDir()
			for _, d := range []string{"@overlay/b/B1/upper", "@overlay/b/B1/work", "@var", "@home"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			copyState := bootstate.State{Seq: 12, LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"}, DataSeen: true,
				Slots: [2]bootstate.SlotState{tc.slotA, good}}
			vm.WriteFile(t, dir, bootstate.CopyName, string(bootstate.MarshalRecord(copyState)))
			disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
			slotctlDisk(t, disk.Path, "mark-good", "b")
			if tc.slotA.Priority == 0 {
				slotctlDisk(t, disk.Path, "mark-bad", "a")
			} else {
				slotctlDisk(t, disk.Path, "set-next", "a")
			}
			if tc.breakB {
				zeroPart(t, disk, "verity-b", 4096)
			}
			opts := vm.Options{Initrd: initrd(t)}
			if tc.garbage {
				garbageBootState(t, disk)
				opts.Disks = []string{disk.Path}
			} else {
				opts.QEMUArgs = unreadableBootState(t, disk)
			}
			m := vm.Start(t, opts)
			m.Expect("keel: boot counting starts from the copy of the boot state on the data partition")
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			if marker(r) != "image-"+tc.want || br.Slot != tc.want {
				t.Errorf("marker %q slot %q: want image-%s from slot %s", marker(r), br.Slot, tc.want, tc.want)
			}
			w := strings.Join(br.Warnings, "\n")
			if !strings.Contains(w, "/run/keel/data/"+bootstate.CopyName+", sequence 12") || !strings.Contains(w, tc.warning) {
				t.Errorf("warnings %q: want the copy named, and %q", w, tc.warning)
			}
			if tc.breakB && (len(br.Fallbacks) != 1 || br.Fallbacks[0].Slot != "b" || br.Fallbacks[0].Class != bootstate.Image.String()) {
				t.Errorf("fallbacks %+v: want b's image fault", br.Fallbacks)
			}
			if held := "is tried only if the good slot fails"; tc.slotA.Priority == 0 && strings.Contains(w, held) {
				t.Errorf("warnings %q: a retired slot is not held back, it cannot boot", w)
			}
		})
	}
}

// garbageBootState overwrites both record copies of the bootstate
// partition with bytes that are neither blank nor a keel record, as a
// sector that gives back other bytes does.
func garbageBootState(t testing.TB, disk vm.Disk) {
	t.Helper()
	f, err := os.OpenFile(disk.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, bootstate.RecordSize)
	for i := range junk {
		junk[i] = byte(0x5a ^ i)
	}
	at := disk.Part(t, "bootstate").Offset
	for _, off := range []int64{at, at + 64<<10} {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
}

// zeroPart overwrites the first n bytes of partition name in disk.
func zeroPart(t testing.TB, disk vm.Disk, name string, n int) {
	t.Helper()
	f, err := os.OpenFile(disk.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), disk.Part(t, name).Offset); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryCountedBootFreezesUpper: A1 is the last good image with its
// upper, B1's trial upper was merged from it. A boot whose boot state
// cannot be read boots a (memory counting) but cannot tell that B1 is on
// trial, so it cannot set B1's upper aside: it mounts A1's upper read-only
// under a tmpfs upper, says so, and keeps /var. A change to /etc made then
// used to land in A1's upper and be missing from B1's, then lost once B1
// was marked good and a later update pruned A1's.
func TestMemoryCountedBootFreezesUpper(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "A1")
	b := seal(t, payloadTree(t, "image-b"), "", "B1")
	const conf, varFile = "/etc/keel-local.conf", "/var/keel-degraded-boot"
	dir := t.TempDir()
	vm.WriteFile(t, dir, "@overlay/a/A1/upper"+conf, "v1")
	vm.WriteFile(t, dir, "@overlay/b/B1/upper"+conf, "v1")
	for _, d := range []string{"@overlay/a/A1/work", "@overlay/b/B1/work", "@var", "@home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A whiteout in A1's upper (the machine deleted the image's marker):
	// honoured with the upper as a lower layer too.
	const marker = "/etc/keel-test-marker"
	if err := unix.Mknod(filepath.Join(dir, "@overlay/a/A1/upper"+marker), unix.S_IFCHR|0o600, 0); err != nil {
		t.Fatal(err)
	}
	disk := abDisk(t, &a, &b, vm.Part{Name: "data", SizeMiB: 17, Content: vm.MkExt4(t, dir, 16, "")})
	slotctlDisk(t, disk.Path, "mark-good", "a")
	rd := initrd(t)

	m := vm.Start(t, vm.Options{Initrd: rd, Cmdline: actions(t, map[string]string{conf: "changed in a degraded boot", varFile: "kept"}, marker),
		QEMUArgs: unreadableBootState(t, disk)})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Slot != "a" || br.Data == nil || !br.Data.UpperReadOnly || br.Data.Upper != "/run/keel/data/@overlay/a/A1" || len(br.Data.Binds) == 0 {
		t.Errorf("boot 1 (bootstate unreadable): slot %q data %+v: want a over A1's upper, read-only, with the binds", br.Slot, br.Data)
	}
	if w := strings.Join(br.Warnings, "\n"); !strings.Contains(w, "is mounted read-only under a tmpfs upper") {
		t.Errorf("boot 1 warnings %q: want the frozen upper named", br.Warnings)
	}
	wantCat(t, r, marker, "")

	r, br = boot(t, rd, disk, actions(t, nil, conf, varFile))
	if br.Slot != "a" || br.Data == nil || br.Data.UpperReadOnly {
		t.Errorf("boot 2: slot %q data %+v: want a over its upper, writable", br.Slot, br.Data)
	}
	wantCat(t, r, conf, "v1")
	wantCat(t, r, varFile, "kept")
}
