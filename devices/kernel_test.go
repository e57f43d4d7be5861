// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests touch the host kernel: loop devices, netlink, mknod. They
// need root and skip with the reason otherwise.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, mknod, netlink receive buffer)")
	}
}

// loopDevice attaches img to a free loop device and detaches it at cleanup.
func loopDevice(t *testing.T, img string) string {
	t.Helper()
	needRoot(t)
	needTool(t, "losetup")
	out, err := execOutput("losetup", "--find", "--show", img)
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(out)
	t.Cleanup(func() { _, _ = execOutput("losetup", "--detach", dev) })
	return dev
}

func TestSize(t *testing.T) {
	img := sparseFile(t, t.TempDir(), "disk.img", 3<<20)
	if n, err := Size(img); err != nil || n != 3<<20 {
		t.Errorf("Size(regular file) = %d, %v; want %d", n, err, 3<<20)
	}
	if _, err := Size("/dev/null"); err == nil || !strings.Contains(err.Error(), "want a block device") {
		t.Errorf("Size(/dev/null) err = %v, want a block device error", err)
	}
	if _, err := Size(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Size(missing) err = %v, want ErrNotExist", err)
	}
	dev := loopDevice(t, img)
	if n, err := Size(dev); err != nil || n != 3<<20 {
		t.Errorf("Size(%s) = %d, %v; want %d", dev, n, err, 3<<20)
	}
}

func TestMknodFromSysfs(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, sys := filepath.Join(dir, "dev"), filepath.Join(dir, "sys")
	if err := os.MkdirAll(filepath.Join(sys, "class", "block", "loop7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "class", "block", "loop7", "dev"), []byte("7:7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{DevDir: dev, SysDir: sys, Mknod: true})
	// No uevent at all: a /dev/NAME the kernel already has returns at once.
	p, err := reg.WaitFor(context.Background(), spec(t, "/dev/loop7"))
	if err != nil || p != filepath.Join(dev, "loop7") {
		t.Fatalf("WaitFor = %q, %v", p, err)
	}
	checkBlockNode(t, p, 7, 7)
	// An add uevent makes the node when devtmpfs did not.
	reg.Handle(ev(t, "add", "vdz", "", 0, ""))
	checkBlockNode(t, filepath.Join(dev, "vdz"), 254, 0)
}

func checkBlockNode(t *testing.T, p string, major, minor uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(st.Rdev) != major || unix.Minor(st.Rdev) != minor {
		t.Errorf("%s: mode %o rdev %d:%d, want block %d:%d", p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), major, minor)
	}
}

func TestNetlinkDeliversKernelBlockUevents(t *testing.T) {
	needRoot(t)
	nl, err := OpenNetlink(NetlinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	// A forged uevent unicast from a user socket is queued first; the
	// reader must drop it because its sender is not the kernel.
	forge(t, nl, "add@/devices/virtual/block/forged\x00SUBSYSTEM=block\x00DEVNAME=forged\x00DEVTYPE=disk\x00")
	dev := loopDevice(t, sparseFile(t, t.TempDir(), "disk.img", 1<<20))
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-nl.Events():
			if e.DevName == "forged" || (e.Subsystem != "block" && !deviceAdded(e)) {
				t.Fatalf("delivered %+v", e)
			}
			if "/dev/"+e.DevName == dev {
				if err := nl.Close(); err != nil {
					t.Fatal(err)
				}
				if _, ok := <-nl.Events(); ok {
					t.Fatal("Events not closed by Close")
				}
				return
			}
		case <-timeout:
			t.Fatalf("no uevent for %s within 10s", dev)
		}
	}
}

// forge sends msg to the Netlink socket's port id from another socket.
func forge(t *testing.T, nl *Netlink, msg string) {
	t.Helper()
	rc, err := nl.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var sa unix.Sockaddr
	if cerr := rc.Control(func(fd uintptr) { sa, err = unix.Getsockname(int(fd)) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: sa.(*unix.SockaddrNetlink).Pid}
	if err := unix.Sendto(fd, []byte(msg), 0, to); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherFindsLoopDeviceByLabel(t *testing.T) {
	needRoot(t)
	needTool(t, "mkfs.ext4")
	label := fmt.Sprintf("keel%d", time.Now().UnixNano()%1e9)
	img := mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-L", label)(t, t.TempDir())
	// A fake sysfs keeps Coldplug from re-announcing the host's disks.
	w, err := Start(Options{SysDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Coldplug(); err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, img)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := w.WaitFor(ctx, spec(t, "LABEL="+label))
	if err != nil || p != dev {
		t.Errorf("WaitFor(LABEL=%s) = %q, %v; want %s", label, p, err, dev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WaitFor(context.Background(), spec(t, "LABEL=none")); !errors.Is(err, ErrSourceClosed) {
		t.Errorf("WaitFor after Close: %v, want ErrSourceClosed", err)
	}
}
