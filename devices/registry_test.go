// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/devspec"
)

// ev builds a block uevent through ParseUevent, as the kernel would send it.
// parent is "" for a disk; partname "" leaves PARTNAME out.
func ev(t testing.TB, action, name, parent string, partn int, partname string) Uevent {
	t.Helper()
	devpath := "/devices/virtual/block/" + name
	fields := []string{"SUBSYSTEM=block", "DEVNAME=" + name, "MAJOR=254", fmt.Sprintf("MINOR=%d", partn)}
	if parent == "" {
		fields = append(fields, "DEVTYPE=disk")
	} else {
		devpath = "/devices/virtual/block/" + parent + "/" + name
		fields = append(fields, "DEVTYPE=partition", fmt.Sprintf("PARTN=%d", partn))
	}
	if partname != "" {
		fields = append(fields, "PARTNAME="+partname)
	}
	e, err := ParseUevent(msg(append([]string{action + "@" + devpath, "ACTION=" + action, "DEVPATH=" + devpath}, fields...)...))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fakeSystem is a registry fed from a channel, over a temp dir whose
// regular files stand in for device nodes.
type fakeSystem struct {
	reg      *Registry
	events   chan Uevent
	dev, sys string
}

func newFakeSystem(t *testing.T) *fakeSystem { return newFakeSystemWith(t, Options{}) }

// newFakeSystemWith is newFakeSystem with o's other options.
func newFakeSystemWith(t *testing.T, o Options) *fakeSystem {
	dir := t.TempDir()
	fs := &fakeSystem{events: make(chan Uevent), dev: filepath.Join(dir, "dev"), sys: filepath.Join(dir, "sys")}
	if err := os.MkdirAll(fs.dev, 0o755); err != nil {
		t.Fatal(err)
	}
	o.DevDir, o.SysDir = fs.dev, fs.sys
	fs.reg = NewRegistry(o)
	done := make(chan struct{})
	go func() { fs.reg.Consume(fs.events); close(done) }()
	t.Cleanup(func() { close(fs.events); <-done })
	return fs
}

// file puts an image (a symlink to it, images are large and sparse) or an
// empty file at dev/name.
func (fs *fakeSystem) file(t *testing.T, name, src string) {
	t.Helper()
	p := filepath.Join(fs.dev, name)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var err error
	if src != "" {
		err = os.Symlink(src, p)
	} else {
		err = os.WriteFile(p, nil, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (fs *fakeSystem) send(evs ...Uevent) {
	for _, e := range evs {
		fs.events <- e
	}
}

// sendHandled is send, returning once the registry has handled evs:
// Consume takes the next event only after handling the last, so once an
// ignored one (not a block device) is taken, evs are registered.
func (fs *fakeSystem) sendHandled(evs ...Uevent) {
	fs.send(evs...)
	fs.send(Uevent{Action: "add", DevPath: "/devices/virtual/tty/tty1", Subsystem: "tty", DevName: "tty1"})
}

// gptDisk is the test disk: root-a, verity-a, and the PARTUUIDs sfdisk chose.
func gptDisk(t *testing.T) (img string, partuuids []string) {
	img = sfdiskImage(t, t.TempDir(), "label: gpt\n size=8M, name=root-a\n size=8M, name=verity-a\n")
	var js sfdiskJSON
	if err := json.Unmarshal(run(t, "", "sfdisk", "--json", img), &js); err != nil {
		t.Fatal(err)
	}
	for _, p := range js.PartitionTable.Partitions {
		partuuids = append(partuuids, strings.ToLower(p.UUID))
	}
	return img, partuuids
}

func spec(t testing.TB, s string) devspec.Spec {
	t.Helper()
	sp, err := devspec.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

type result struct {
	path string
	err  error
}

func waitAsync(ctx context.Context, r *Registry, sp devspec.Spec) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := r.WaitFor(ctx, sp)
		ch <- result{p, err}
	}()
	return ch
}

// TestWaitForDeviceAppearingLater: a waiter blocks until the device is
// announced, then returns it. In a synctest bubble, synctest.Wait returns
// once the waiter is durably blocked: a WaitFor that returned early is
// seen, whatever the host's speed.
func TestWaitForDeviceAppearingLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := newFakeSystem(t)
		fs.file(t, "vda", "")
		fs.file(t, "vda1", "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := waitAsync(ctx, fs.reg, spec(t, "PARTLABEL=root-a"))
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("WaitFor returned before any device appeared: %+v", r)
		default:
		}
		fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, "root-a"))
		r := <-res
		if want := filepath.Join(fs.dev, "vda1"); r.err != nil || r.path != want {
			t.Fatalf("WaitFor = %q, %v; want %q", r.path, r.err, want)
		}
	})
}

func TestWaitForTimeoutListsSeen(t *testing.T) {
	fs := newFakeSystem(t)
	for _, n := range []string{"vda", "vda1", "vda2"} {
		fs.file(t, n, "")
	}
	fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, "root-a"), ev(t, "add", "vda2", "vda", 2, "verity-a"),
		Uevent{Action: "add", DevPath: "/module/dm_mod", Subsystem: "module"})
	// A deadline already past: WaitFor still looks at what is known, then
	// fails. How long it waited is not checked (TestWaitErrorText is).
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := fs.reg.WaitFor(ctx, spec(t, "PARTLABEL=verity-b"))
	want := ` waiting for PARTLABEL=verity-b (seen: vda, vda1 "root-a", vda2 "verity-a")`
	if err == nil || !strings.HasPrefix(err.Error(), "timed out after ") || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("err = %v\nwant timed out after … %s", err, want)
	}
	var we *WaitError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &we) || len(we.Seen) != 3 || we.Spec != spec(t, "PARTLABEL=verity-b") {
		t.Errorf("err = %#v, want a *WaitError wrapping context.DeadlineExceeded", err)
	}
}

// TestWaitErrorText formats given durations: the text, not the clock.
func TestWaitErrorText(t *testing.T) {
	sp := spec(t, "LABEL=data")
	for _, tt := range []struct {
		e    WaitError
		want string
	}{
		{WaitError{Spec: sp, Waited: 50 * time.Millisecond, Err: context.DeadlineExceeded}, "timed out after 50ms waiting for LABEL=data (seen: no block devices)"},
		{WaitError{Spec: sp, Waited: 30*time.Second + 4*time.Millisecond, Seen: []string{"vda"}, Err: context.DeadlineExceeded}, "timed out after 30s waiting for LABEL=data (seen: vda)"},
		{WaitError{Spec: sp, Waited: 1234567 * time.Microsecond, Err: context.Canceled}, "canceled after 1.2s waiting for LABEL=data (seen: no block devices)"},
		{WaitError{Spec: sp, Err: ErrSourceClosed}, "uevent source closed after 0s waiting for LABEL=data (seen: no block devices)"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	// A budget spent before the wait began waited 0, not a negative time.
	start := time.Now()
	past, cancel := context.WithDeadline(context.Background(), start.Add(-time.Second))
	defer cancel()
	if w := waited(past, start); w != 0 {
		t.Errorf("waited with a past deadline = %v, want 0", w)
	}
}

func TestWaitForPartUUIDThroughGPT(t *testing.T) {
	img, partuuids := gptDisk(t)
	for _, tc := range []struct{ disk, p1, p2 string }{{"vda", "vda1", "vda2"}, {"nvme0n1", "nvme0n1p1", "nvme0n1p2"}} {
		t.Run(tc.disk, func(t *testing.T) {
			fs := newFakeSystem(t)
			fs.file(t, tc.disk, img)
			fs.file(t, tc.p1, "")
			fs.file(t, tc.p2, "")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := waitAsync(ctx, fs.reg, spec(t, "PARTUUID="+strings.ToUpper(partuuids[1])))
			// No PARTNAME: the match must come from the disk's GPT. The
			// partition appears after the disk, as the kernel sends them.
			fs.send(ev(t, "add", tc.disk, "", 0, ""), ev(t, "add", tc.p1, tc.disk, 1, ""))
			fs.send(ev(t, "add", tc.p2, tc.disk, 2, ""))
			r := <-res
			if want := filepath.Join(fs.dev, tc.p2); r.err != nil || r.path != want {
				t.Fatalf("WaitFor = %q, %v; want %q", r.path, r.err, want)
			}
			devs := fs.reg.Devices()
			if len(devs) != 3 || devs[1].PartUUID != partuuids[0] || devs[2].PartUUID != partuuids[1] || devs[2].Parent != tc.disk {
				t.Errorf("Devices() = %+v, want PARTUUIDs %v", devs, partuuids)
			}
		})
	}
}

func TestWaitForPartLabelFromGPTName(t *testing.T) {
	// The kernel reports non-ASCII names squashed to 7 bits; the GPT has
	// the real name.
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=8M, name=\"données\"\n")
	fs := newFakeSystem(t)
	fs.file(t, "vda", img)
	fs.file(t, "vda1", "")
	fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, "donn!es"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := fs.reg.WaitFor(ctx, spec(t, "PARTLABEL=données"))
	if want := filepath.Join(fs.dev, "vda1"); err != nil || p != want {
		t.Fatalf("WaitFor = %q, %v; want %q", p, err, want)
	}
}

// The kernel's PARTNAME keeps the low byte of each UTF-16 unit of a GPT
// name: "Ťata" (U+0164) is "data" to it. Once the disk's GPT is read, its
// own name decides; the kernel's stands for a disk whose table keel cannot
// read, for an MBR (the kernel may name its partitions from blkdevparts=)
// and for a partition the GPT keel read does not list. The seen list of a
// wait that gives up shows the name that was matched against.
func TestPartLabelGPTNameDecides(t *testing.T) {
	squashed := sfdiskImage(t, t.TempDir(), "label: gpt\n size=4M, name=\"\u0164ata\"\n size=4M, name=\"spare\"\n")
	mbr := sfdiskImage(t, t.TempDir(), "label: dos\n size=4M\n size=4M\n")
	oneEntry := sfdiskImage(t, t.TempDir(), "label: gpt\n size=4M, name=\"root-a\"\n")
	for _, tc := range []struct {
		name, disk, label, want, seen string
	}{
		{"squashed name is not the label", squashed, "data", "", "vda1 \"\u0164ata\""},
		{"the GPT's own name", squashed, "\u0164ata", "vda1", ""},
		{"a table that cannot be read: the kernel's name", "", "data", "vda1", ""},
		{"an MBR: the kernel's name", mbr, "data", "vda1", ""},
		{"the GPT's name of a listed partition", oneEntry, "root-a", "vda1", ""},
		{"a listed partition is not the kernel's name", oneEntry, "data", "", `vda1 "root-a"`},
		{"a partition the GPT does not list: the kernel's name", oneEntry, "spare", "vda2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeSystem(t)
			fs.file(t, "vda", tc.disk)
			fs.file(t, "vda1", "")
			fs.file(t, "vda2", "")
			// The partitions' uevents come with the disk's, before any read.
			fs.sendHandled(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, "data"), ev(t, "add", "vda2", "vda", 2, "spare"))
			// A wait that must find the partition may take long (the
			// disk's table is read first); a short deadline only where
			// giving up is what the case expects.
			timeout := time.Minute
			if tc.want == "" {
				timeout = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			p, err := fs.reg.WaitFor(ctx, spec(t, "PARTLABEL="+tc.label))
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.seen) {
					t.Fatalf("WaitFor(PARTLABEL=%s) = %q, %v; want no match, the error seeing %s", tc.label, p, err, tc.seen)
				}
				if m := fs.reg.Matches(ctx, spec(t, "PARTLABEL="+tc.label)); len(m) != 0 {
					t.Errorf("Matches(PARTLABEL=%s) = %q, want none", tc.label, m)
				}
				return
			}
			if want := filepath.Join(fs.dev, tc.want); err != nil || p != want {
				t.Fatalf("WaitFor(PARTLABEL=%s) = %q, %v; want %q", tc.label, p, err, want)
			}
		})
	}
}

// TestPartLabelNotHeldByAStalledDisk: a PARTLABEL the kernel names on one
// disk reads that disk's table first: a disk announced before it whose
// reads never end (a stick in error recovery) does not hold the wait, nor
// does another waiter stalled on that disk. While a disk is still being
// read, Matches counts its partitions by the kernel's name: a copy is not
// left out for its disk's slowness.
func TestPartLabelNotHeldByAStalledDisk(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=4M, name=\"data\"\n")
	release := make(chan struct{})
	stalled := make(chan struct{}, 1)
	defer func(f func(*probeJob)) { runProbe = f }(runProbe)
	run := runProbe
	runProbe = func(j *probeJob) {
		if j.name == "sda" {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-release
		}
		run(j)
	}
	fs := newFakeSystem(t)
	fs.file(t, "sda", "")
	fs.file(t, "sda1", "")
	fs.file(t, "vdb", img)
	fs.file(t, "vdb1", "")
	// Handled before the wait starts: a wait that found no partition
	// named data would claim every disk, sda first, as it should.
	fs.sendHandled(ev(t, "add", "sda", "", 0, ""), ev(t, "add", "vdb", "", 0, ""), ev(t, "add", "vdb1", "vdb", 1, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := waitAsync(ctx, fs.reg, spec(t, "PARTLABEL=data"))
	select {
	case r := <-res:
		if r.err != nil || r.path != filepath.Join(fs.dev, "vdb1") {
			t.Fatalf("WaitFor(PARTLABEL=data) = %q, %v; want vdb1, its disk read first", r.path, r.err)
		}
	case <-time.After(time.Minute): // a hang, not a duration: the wait's own deadline is 10 s
		close(release)
		t.Fatal("WaitFor(PARTLABEL=data) is held by the stalled disk sda, past its deadline")
	}
	// A partition the kernel names "data" on the stalled disk: a waiter
	// reading sda holds it; Matches, given up, counts both.
	fs.sendHandled(ev(t, "add", "sda1", "sda", 1, "data"))
	// A third disk, announced before a waiter that reads every device
	// stalls on sda: it must not be left marked as being read by that
	// waiter, which never reaches it (found in review).
	fs.file(t, "vdc", sfdiskImage(t, t.TempDir(), "label: gpt\n size=4M, name=\"other\"\n"))
	fs.file(t, "vdc1", "")
	fs.sendHandled(ev(t, "add", "vdc", "", 0, ""), ev(t, "add", "vdc1", "vdc", 1, "other"))
	bg, stopBg := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() { _, _ = fs.reg.WaitFor(bg, spec(t, "UUID="+fsUUID)); close(bgDone) }()
	<-stalled
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	var we *WaitError
	if _, err := fs.reg.WaitFor(short, spec(t, "PARTLABEL=nothing")); !errors.As(err, &we) || !strings.Contains(err.Error(), "sda (being read)") {
		t.Errorf("a wait given up while sda is read: %v; want sda named as being read", err)
	}
	if m := fs.reg.Matches(short, spec(t, "PARTLABEL=data")); len(m) != 2 {
		t.Errorf("Matches(PARTLABEL=data) with sda still being read = %q, want sda1 and vdb1", m)
	}
	if p, err := fs.reg.WaitFor(ctx, spec(t, "PARTLABEL=other")); err != nil || p != filepath.Join(fs.dev, "vdc1") {
		t.Errorf("WaitFor(PARTLABEL=other) while another waiter's read of sda hangs = %q, %v; want vdc1", p, err)
	}
	// The waiter reading sda ends before runProbe is restored.
	close(release)
	stopBg()
	<-bgDone
}

func TestWaitForLabelAndUUIDThroughProbe(t *testing.T) {
	needTool(t, "mkfs.ext4")
	dir := t.TempDir()
	ext4 := mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-L", "data", "-U", fsUUID)(t, dir)
	fs := newFakeSystem(t)
	fs.file(t, "vda", "")
	fs.file(t, "vdb", ext4)
	fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vdb", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	paths, err := fs.reg.WaitAll(ctx, []devspec.Spec{spec(t, "LABEL=data"), spec(t, "UUID="+strings.ToUpper(fsUUID)), spec(t, "/dev/vda")})
	want := []string{filepath.Join(fs.dev, "vdb"), filepath.Join(fs.dev, "vdb"), filepath.Join(fs.dev, "vda")}
	if err != nil || strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("WaitAll = %q, %v; want %q", paths, err, want)
	}
	if d := fs.reg.Devices()[1]; d.FSType != "ext4" || d.Label != "data" || d.UUID != fsUUID {
		t.Errorf("Devices()[1] = %+v, want the ext4 probe", d)
	}
}

func TestWaitAllNamesEveryMissingDevice(t *testing.T) {
	fs := newFakeSystem(t)
	fs.file(t, "vda", "")
	fs.sendHandled(ev(t, "add", "vda", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := fs.reg.WaitAll(ctx, []devspec.Spec{spec(t, "/dev/vda"), spec(t, "LABEL=data"), spec(t, "PARTLABEL=bootstate")})
	if err == nil || !strings.Contains(err.Error(), "LABEL=data (seen: vda)") || !strings.Contains(err.Error(), "PARTLABEL=bootstate (seen: vda)") {
		t.Fatalf("err = %v, want both missing specs named", err)
	}
}

func TestChangeEventReprobes(t *testing.T) {
	needTool(t, "mkfs.ext4")
	ext4 := mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-L", "late", "-U", fsUUID)(t, t.TempDir())
	var probes atomic.Int32
	defer func(f func(*probeJob)) { runProbe = f }(runProbe)
	run := runProbe
	runProbe = func(j *probeJob) {
		if j.name == "vdc" {
			probes.Add(1)
		}
		run(j)
	}
	fs := newFakeSystem(t)
	fs.file(t, "vdc", "")
	fs.sendHandled(ev(t, "add", "vdc", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := fs.reg.WaitFor(ctx, spec(t, "LABEL=late")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty vdc: err = %v, want a timeout", err)
	}
	probed := func() probeState {
		fs.reg.mu.Lock()
		defer fs.reg.mu.Unlock()
		return fs.reg.devs["vdc"].probe
	}
	for deadline := time.Now().Add(time.Minute); probed() != probeDone; time.Sleep(time.Millisecond) { // a hang guard
		if time.Now().After(deadline) {
			t.Fatal("the probe of the empty vdc never ended")
		}
	}
	fs.file(t, "vdc", ext4)
	fs.sendHandled(ev(t, "add", "vdc", "", 0, "")) // coldplug again: same device, same contents assumed
	if st, n := probed(), probes.Load(); st != probeDone || n != 1 {
		t.Fatalf("after a repeated add: probe state %v, %d probes: want the cached probe kept, 1 probe", st, n)
	}
	fs.send(ev(t, "change", "vdc", "", 0, ""))
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	if p, err := fs.reg.WaitFor(ctx3, spec(t, "LABEL=late")); err != nil || p != filepath.Join(fs.dev, "vdc") {
		t.Fatalf("after change: WaitFor = %q, %v", p, err)
	}
	if n := probes.Load(); n != 2 {
		t.Errorf("%d probes of vdc, want 2 (the change re-probes)", n)
	}
}

func TestRemoveAndSourceClosed(t *testing.T) {
	dir := t.TempDir()
	reg := NewRegistry(Options{DevDir: dir})
	events := make(chan Uevent, 4)
	events <- ev(t, "add", "vda", "", 0, "")
	events <- ev(t, "add", "vdb", "", 0, "")
	events <- ev(t, "remove", "vda", "", 0, "")
	close(events)
	reg.Consume(events)
	if devs := reg.Devices(); len(devs) != 1 || devs[0].Name != "vdb" || devs[0].Path != filepath.Join(dir, "vdb") {
		t.Errorf("Devices() = %+v, want only vdb", devs)
	}
	_, err := reg.WaitFor(context.Background(), spec(t, "/dev/vda"))
	if !errors.Is(err, ErrSourceClosed) || !strings.HasPrefix(err.Error(), "uevent source closed after ") ||
		!strings.HasSuffix(err.Error(), " waiting for /dev/vda (seen: vdb)") {
		t.Errorf("err = %v, want ErrSourceClosed naming /dev/vda and vdb", err)
	}
}

func TestWaitForCanceled(t *testing.T) {
	fs := newFakeSystem(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := waitAsync(ctx, fs.reg, spec(t, "UUID=0ddba11"))
	cancel()
	r := <-res
	if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), "canceled after") ||
		!strings.HasSuffix(r.err.Error(), "(seen: no block devices)") {
		t.Errorf("err = %v, want canceled with no devices seen", r.err)
	}
}

func TestSeenListIsBounded(t *testing.T) {
	fs := newFakeSystem(t)
	for i := range 30 {
		fs.send(ev(t, "add", fmt.Sprintf("loop%d", i), "", 0, ""))
	}
	fs.sendHandled()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := fs.reg.WaitFor(ctx, spec(t, "/dev/vda"))
	if err == nil || !strings.HasSuffix(err.Error(), "loop23, … 6 more)") {
		t.Errorf("err = %v, want the list cut after 24 devices", err)
	}
}

func TestHandleIgnoresNonBlock(t *testing.T) {
	reg := NewRegistry(Options{})
	reg.Handle(Uevent{Action: "add", DevPath: "/devices/virtual/tty/tty1", Subsystem: "tty", DevName: "tty1"})
	reg.Handle(Uevent{Action: "add", DevPath: "/module/loop", Subsystem: "module"})
	if devs := reg.Devices(); len(devs) != 0 {
		t.Errorf("Devices() = %+v, want none", devs)
	}
}

func TestConcurrentWaiters(t *testing.T) {
	img, partuuids := gptDisk(t)
	fs := newFakeSystem(t)
	fs.file(t, "vda", img)
	fs.file(t, "vda1", "")
	fs.file(t, "vda2", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var results []<-chan result
	for i := range 16 {
		s := []string{"PARTUUID=" + partuuids[i%2], "PARTLABEL=verity-a", "/dev/vda1"}[i%3]
		results = append(results, waitAsync(ctx, fs.reg, spec(t, s)))
	}
	fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, "root-a"), ev(t, "add", "vda2", "vda", 2, "verity-a"))
	for i, ch := range results {
		if r := <-ch; r.err != nil || !strings.HasPrefix(filepath.Base(r.path), "vda") {
			t.Errorf("waiter %d: %q, %v", i, r.path, r.err)
		}
	}
}

// TestMatchesFindsEveryCopy: two disks carrying the same file-system UUID
// (a stick cloned from the machine's data partition) both match, probed
// on demand; a UUID nobody has matches nothing.
func TestMatchesFindsEveryCopy(t *testing.T) {
	needTool(t, "mkfs.ext4")
	dir := t.TempDir()
	ext4 := mkfsImage(8<<20, "mkfs.ext4", "-q", "-F", "-L", "data", "-U", fsUUID)(t, dir)
	fs := newFakeSystem(t)
	fs.file(t, "vda", ext4)
	fs.file(t, "vdb", "")
	fs.file(t, "sda", ext4)
	fs.send(ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vdb", "", 0, ""), ev(t, "add", "sda", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Matches answers for the devices known now: wait until the registry
	// has handled all three uevents (send returns once each is received).
	for len(fs.reg.Devices()) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("the registry knows %d devices, want 3", len(fs.reg.Devices()))
		}
		time.Sleep(time.Millisecond)
	}
	got := fs.reg.Matches(ctx, spec(t, "UUID="+fsUUID))
	if want := []string{filepath.Join(fs.dev, "vda"), filepath.Join(fs.dev, "sda")}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Matches(UUID) = %q, want %q", got, want)
	}
	if got := fs.reg.Matches(ctx, spec(t, "LABEL=other")); len(got) != 0 {
		t.Errorf("Matches(LABEL=other) = %q, want none", got)
	}
}

// TestOnDiskWaitReadsOnlyThatDisk: a wait restricted to the system disk
// reads that disk and its partitions only: a stick plugged in later, whose
// reads may never end, is not read for it.
func TestOnDiskWaitReadsOnlyThatDisk(t *testing.T) {
	r := NewRegistry(Options{DevDir: t.TempDir(), SysDir: t.TempDir()})
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "vda", DevType: "disk", Major: 253, Minor: 0})
	r.mu.Lock()
	r.devs["vda"].probe = probeDone
	r.devs["vda"].parts = []Partition{{Index: 2, Name: "data"}} // vda2 not announced yet
	r.mu.Unlock()
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "sdb", DevType: "disk", Major: 8, Minor: 16})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no wait: one round of matching and probing
	if _, err := r.WaitForOnDisk(ctx, devspec.OfPartLabel("data"), "vda"); err == nil {
		t.Fatal("found a partition that is not announced")
	}
	r.mu.Lock()
	st := r.devs["sdb"].probe
	r.mu.Unlock()
	if st != probeNone {
		t.Errorf("a wait restricted to vda read sdb (probe state %d)", st)
	}
}

// TestTieWaitsForADeviceSeenFirst: two disks carry the same PARTUUID (a
// copy); another waiter is still reading the first. The wait reads the
// second, then waits for the first rather than return the copy: ties go
// to the device seen first, whichever waiter reads it (found in review).
func TestTieWaitsForADeviceSeenFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		defer func(f func(*probeJob)) { runProbe = f }(runProbe)
		runProbe = func(j *probeJob) {
			if j.name == "vda" {
				close(entered)
				<-release
			}
			if j.disk {
				j.parts = []Partition{{Index: 1, Name: "x", UUID: "0a1b2c3d-01"}}
			}
		}
		dev := t.TempDir()
		r := NewRegistry(Options{DevDir: dev, SysDir: t.TempDir()})
		for _, e := range []Uevent{ev(t, "add", "vda", "", 0, ""), ev(t, "add", "vda1", "vda", 1, ""), ev(t, "add", "vdb", "", 0, ""), ev(t, "add", "vdb1", "vdb", 1, "")} {
			r.Handle(e)
		}
		bg, stopBg := context.WithCancel(context.Background())
		bgDone := make(chan struct{})
		go func() { _, _ = r.WaitFor(bg, devspec.OfPartLabel("nothing-here")); close(bgDone) }()
		<-entered
		res := waitAsync(context.Background(), r, spec(t, "PARTUUID=0a1b2c3d-01"))
		synctest.Wait() // vdb read; the wait blocked on vda's read, or returned vdb1
		close(release)
		if got := <-res; got.err != nil || got.path != filepath.Join(dev, "vda1") {
			t.Errorf("WaitFor(PARTUUID) with vda still being read = %q, %v; want vda1, seen first", got.path, got.err)
		}
		stopBg()
		<-bgDone
	})
}

// TestProbeStoredAsRead: a disk whose read does not end holds only itself:
// the other's table is known as soon as it is read (the choice of the
// system disk used to see both "being read" and name both when it gave
// up, when they were claimed together).
func TestProbeStoredAsRead(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer func(f func(*probeJob)) { runProbe = f }(runProbe)
	runProbe = func(j *probeJob) {
		if j.name == "vdb" {
			close(entered)
			<-release
			return
		}
		j.parts = []Partition{{Index: 1, Name: "bootstate"}}
	}
	r := NewRegistry(Options{DevDir: t.TempDir(), SysDir: t.TempDir()})
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "vda", DevType: "disk", Major: 253, Minor: 0})
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "vdb", DevType: "disk", Major: 253, Minor: 16})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.WaitFor(ctx, devspec.OfPartLabel("data"))
	}()
	<-entered
	r.mu.Lock()
	pending := r.tablesPending()
	r.mu.Unlock()
	close(release)
	<-done
	if !slices.Equal(pending, []string{"vdb"}) {
		t.Errorf("tables being read while vdb's read hung: %v, want vdb alone", pending)
	}
}

// TestProbeOfRemovedDeviceDropped: a disk removed while it is read, and
// another announced under the same name, does not get the removed one's
// partition table.
func TestProbeOfRemovedDeviceDropped(t *testing.T) {
	r := NewRegistry(Options{DevDir: t.TempDir(), SysDir: t.TempDir()})
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "sdb", DevType: "disk", Major: 8, Minor: 16})
	r.mu.Lock()
	j := r.claimProbe(devspec.OfPartLabel("root-a"), "")
	r.mu.Unlock()
	if j == nil {
		t.Fatal("no probe job, want sdb's")
	}
	j.parts = []Partition{{Index: 1, Name: "root-a", UUID: "old-stick"}}
	r.Handle(Uevent{Action: "remove", Subsystem: "block", DevName: "sdb", DevType: "disk", Major: 8, Minor: 16})
	r.Handle(Uevent{Action: "add", Subsystem: "block", DevName: "sdb", DevType: "disk", Major: 8, Minor: 32})
	r.mu.Lock()
	r.storeProbe(j)
	d := r.devs["sdb"]
	r.mu.Unlock()
	if d.probe != probeNone || len(d.parts) != 0 {
		t.Errorf("the new sdb (8:32) has probe state %d, partitions %+v: want it unread", d.probe, d.parts)
	}
}

// TestHandleOnDevice: the add of a device with a MODALIAS reaches
// OnDevice with its subsystem; a block device, a change, a device without
// MODALIAS and a module's announcement do not.
func TestHandleOnDevice(t *testing.T) {
	var got []string
	r := NewRegistry(Options{OnDevice: func(s, a string) { got = append(got, s+" "+a) }})
	for _, m := range [][]string{
		{"add@/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", "ACTION=add", "SUBSYSTEM=scsi", "DEVTYPE=scsi_device", "MODALIAS=scsi:t-0x00"},
		{"add@/devices/pci0000:00/0000:00:1f.2/ata1/host0", "ACTION=add", "SUBSYSTEM=scsi", "DEVTYPE=scsi_host"},
		{"change@/devices/pci0000:00/0000:00:02.0", "ACTION=change", "SUBSYSTEM=pci", "MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"},
		{"add@/devices/pci0000:00/0000:00:02.0", "ACTION=add", "SUBSYSTEM=pci", "MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"},
		{"add@/module/ahci", "ACTION=add", "SUBSYSTEM=module"},
	} {
		e, err := ParseUevent(msg(m...))
		if err != nil {
			t.Fatal(err)
		}
		r.Handle(e)
	}
	r.Handle(ev(t, "add", "vda", "", 0, ""))
	if want := []string{"scsi scsi:t-0x00", "pci pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"}; !slices.Equal(got, want) {
		t.Errorf("OnDevice got %q, want %q", got, want)
	}
}

// TestDeliverFilters: the socket's reader passes on block uevents, module
// announcements and the adds of devices with a MODALIAS (the init loads a
// storage driver for them), and drops the rest.
func TestDeliverFilters(t *testing.T) {
	n := &Netlink{events: make(chan Uevent, 8), done: make(chan struct{})}
	for _, m := range [][]string{
		{"add@/devices/pci0000:00/0000:00:02.0", "ACTION=add", "SUBSYSTEM=pci", "MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"},
		{"add@/devices/virtual/bdi/7:0", "ACTION=add", "SUBSYSTEM=bdi"},
		{"bind@/devices/pci0000:00/0000:00:02.0", "ACTION=bind", "SUBSYSTEM=pci", "MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", "DRIVER=virtio-pci"},
		{"add@/module/virtio_pci", "ACTION=add", "SUBSYSTEM=module"},
		{"add@/devices/virtual/block/vda", "ACTION=add", "SUBSYSTEM=block", "DEVNAME=vda", "DEVTYPE=disk", "MAJOR=254", "MINOR=0"},
	} {
		if !n.deliver(msg(m...), nil) {
			t.Fatal("deliver reported the socket closed")
		}
	}
	close(n.events)
	var got []string
	for e := range n.events {
		got = append(got, e.Action+" "+e.Subsystem)
	}
	if want := []string{"add pci", "add module", "add block"}; !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

// TestWaitErrorQuotesLUKSUUID: a stick's LUKS header holds its UUID as 40
// free bytes; a UUID= wait that gives up lists it among the devices seen,
// and that error reaches the console and the kernel log. A newline or an
// escape sequence there must come out quoted, as labels do (%q).
func TestWaitErrorQuotesLUKSUUID(t *testing.T) {
	fs := newFakeSystem(t)
	h := make([]byte, 4096)
	copy(h, "LUKS\xba\xbe\x00\x02")
	copy(h[168:], "x\nkeel: root verified\x1b[2J")
	img := filepath.Join(t.TempDir(), "stick.img")
	if err := os.WriteFile(img, h, 0o644); err != nil {
		t.Fatal(err)
	}
	fs.file(t, "sdb", img)
	fs.sendHandled(ev(t, "add", "sdb", "", 0, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := fs.reg.WaitFor(ctx, spec(t, "UUID=5b0f0a2e-6c1d-4f3e-8a9b-0c1d2e3f4a5b"))
	if err == nil {
		t.Fatal("found")
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\n\x1b") {
		t.Errorf("wait error carries the header's bytes raw: %q", msg)
	}
}
