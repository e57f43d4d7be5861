// SPDX-License-Identifier: Apache-2.0

package watchdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeConn records what was done to the device. It has no Write: the
// type system already keeps the magic close out of Conn, and calls records
// every call that reaches the device.
type fakeConn struct {
	calls      []string
	timeout    int
	refuse     bool // SetTimeout fails with EINVAL, keeping timeout
	round      int  // the driver rounds a timeout up to a multiple of this
	keepErr    error
	closed     bool
	afterClose []string
}

func (c *fakeConn) record(s string) {
	if c.closed {
		c.afterClose = append(c.afterClose, s)
	}
	c.calls = append(c.calls, s)
}

func (c *fakeConn) SetTimeout(s int) error {
	c.record(fmt.Sprintf("settimeout %d", s))
	if c.refuse {
		return syscall.EINVAL
	}
	if c.round > 0 {
		s = (s + c.round - 1) / c.round * c.round
	}
	c.timeout = s
	return nil
}

func (c *fakeConn) Timeout() (int, error) { c.record("gettimeout"); return c.timeout, nil }

func (c *fakeConn) Keepalive() error { c.record("keepalive"); return c.keepErr }

func (c *fakeConn) Close() error { c.record("close"); c.closed = true; return nil }

func TestSetTimeout(t *testing.T) {
	c := &fakeConn{timeout: 30, round: 2}
	d := NewDevice("/dev/watchdog0", "i6300ESB timer", c)
	got, err := d.SetTimeout(15 * time.Second)
	if err != nil || got != 16*time.Second {
		t.Errorf("SetTimeout(15 s) on a driver rounding to 2 s = %v, %v: want 16s", got, err)
	}
	c = &fakeConn{timeout: 30, refuse: true}
	d = NewDevice("/dev/watchdog0", "i6300ESB timer", c)
	got, err = d.SetTimeout(5000 * time.Second)
	if got != 30*time.Second || err == nil || !errors.Is(err, syscall.EINVAL) ||
		!strings.Contains(err.Error(), "setting the timeout to 5000 s") || !strings.Contains(err.Error(), "it runs with 30 s") {
		t.Errorf("SetTimeout refused = %v, %v: want the driver's 30 s and an error naming both", got, err)
	}
}

// TestHandOffWithoutMagicClose: the hand-off feeds once more and closes,
// and nothing else reaches the device — no write, so no magic 'V', and the
// watchdog keeps running for systemd.
func TestHandOffWithoutMagicClose(t *testing.T) {
	c := &fakeConn{timeout: 10}
	f := NewFeeder(Lease{Human: true}, nil)
	f.Attach(NewDevice("/dev/watchdog0", "i6300ESB timer", c), 10*time.Second)
	go f.Run()
	d, err := f.HandOff()
	if err != nil || d == nil || d.Path != "/dev/watchdog0" {
		t.Fatalf("HandOff = %v, %v", d, err)
	}
	n := len(c.calls)
	if n < 2 || c.calls[n-2] != "keepalive" || c.calls[n-1] != "close" || len(c.afterClose) != 0 {
		t.Errorf("calls %v: want a last keepalive, then close, then nothing", c.calls)
	}
	for _, call := range c.calls {
		if call != "keepalive" && call != "close" {
			t.Errorf("hand-off made call %q: want only keepalives and one close", call)
		}
	}
	if d, err := f.HandOff(); d != nil || err != nil {
		t.Errorf("second HandOff = %v, %v: want nothing done", d, err)
	}
	if f.Tick(time.Now()) {
		t.Error("Tick fed a device after the hand-off")
	}
}

// TestHandOffMagicCloseFile checks the real file path of the hand-off on a
// regular file standing in for the device: the ioctls fail (ENOTTY), but
// not a byte is written.
func TestHandOffMagicCloseFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "watchdog0")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p, "fake")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HandOff(); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("HandOff on a regular file = %v: want the keepalive's ENOTTY", err)
	}
	if b, err := os.ReadFile(p); err != nil || len(b) != 0 {
		t.Errorf("after the hand-off the file holds %q (%v): want nothing written, no magic close", b, err)
	}
}

func TestHandOffWithoutDevice(t *testing.T) {
	f := NewFeeder(Lease{}, nil)
	if d, err := f.HandOff(); d != nil || err != nil {
		t.Errorf("HandOff with no device = %v, %v", d, err)
	}
}

func TestTickLease(t *testing.T) {
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	c := &fakeConn{}
	var logs []string
	f := NewFeeder(Lease{Until: now.Add(time.Minute)}, func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) })
	if f.Tick(now) {
		t.Fatal("Tick fed with no device attached")
	}
	f.Attach(NewDevice("/dev/watchdog0", "x", c), 10*time.Second)
	steps := []struct {
		at    time.Duration
		lease *Lease
		feeds bool
	}{
		{0, nil, true},
		{59 * time.Second, nil, true},
		{time.Minute, nil, false}, // the lease ran out: a hang
		{2 * time.Minute, nil, false},
		{3 * time.Minute, &Lease{Human: true}, true}, // a prompt: fed however long
		{time.Hour, nil, true},
		{time.Hour, &Lease{Until: now.Add(time.Hour + time.Second)}, true},
		{time.Hour + time.Second, nil, false},
	}
	for i, s := range steps {
		if s.lease != nil {
			f.Set(*s.lease)
		}
		if got := f.Tick(now.Add(s.at)); got != s.feeds {
			t.Errorf("step %d at +%v, lease %+v: fed %v, want %v", i, s.at, f.Lease(), got, s.feeds)
		}
	}
	if want := []string{"keepalive", "keepalive", "keepalive", "keepalive", "keepalive"}; !reflect.DeepEqual(c.calls, want) {
		t.Errorf("calls %v, want %v", c.calls, want)
	}
	if len(logs) != 2 || !strings.Contains(logs[0], "no longer feeding") {
		t.Errorf("logs %q: want one message per time feeding stopped", logs)
	}
	c.keepErr = syscall.EIO
	f.Set(Lease{Human: true})
	if f.Tick(now) || len(logs) != 3 || !strings.Contains(logs[2], "keepalive: input/output error") {
		t.Errorf("a failing keepalive: logs %q", logs)
	}
}

func TestInterval(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: 100 * time.Millisecond, time.Second: 250 * time.Millisecond, time.Minute: 15 * time.Second,
	} {
		if got := Interval(in); got != want {
			t.Errorf("Interval(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestIndexAndChoose(t *testing.T) {
	for name, want := range map[string]int{"watchdog0": 0, "watchdog12": 12} {
		if got, ok := Index(name); !ok || got != want {
			t.Errorf("Index(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"watchdog", "watchdog01", "watchdog-1", "watchdogx", "wd0", "watchdog99999999"} {
		if _, ok := Index(name); ok {
			t.Errorf("Index(%q) accepted", name)
		}
	}
	soft := Info{Index: 0, Name: "watchdog0", Identity: SoftIdentity}
	hw := Info{Index: 1, Name: "watchdog1", Identity: "i6300ESB timer"}
	if got, ok := Choose([]Info{soft, hw}, false); !ok || got != hw {
		t.Errorf("Choose(soft, hw) = %v, %v: want the hardware one", got, ok)
	}
	if got, ok := Choose([]Info{soft, hw}, true); !ok || got != hw {
		t.Errorf("Choose(soft, hw, soft allowed) = %v, %v: want the hardware one", got, ok)
	}
	if _, ok := Choose([]Info{soft}, false); ok {
		t.Error("Choose took softdog without the opt-in")
	}
	if got, ok := Choose([]Info{soft}, true); !ok || got != soft {
		t.Errorf("Choose(soft, allowed) = %v, %v", got, ok)
	}
	if _, ok := Choose(nil, true); ok {
		t.Error("Choose(nil) found a watchdog")
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for name, id := range map[string]string{"watchdog10": "iTCO_wdt\n", "watchdog2": SoftIdentity + "\n", "watchdog0": "", "other": "x"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if id != "" {
			if err := os.WriteFile(filepath.Join(dir, name, "identity"), []byte(id), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []Info{{0, "watchdog0", ""}, {2, "watchdog2", SoftIdentity}, {10, "watchdog10", "iTCO_wdt"}}
	if got := List(dir); !reflect.DeepEqual(got, want) {
		t.Errorf("List = %+v, want %+v", got, want)
	}
	if got := List(filepath.Join(dir, "missing")); got != nil {
		t.Errorf("List(missing) = %v", got)
	}
	if got := want[2].DevPath("/dev"); got != "/dev/watchdog10" {
		t.Errorf("DevPath = %q", got)
	}
}

// FuzzChoose: whatever sysfs lists, Choose never picks softdog without the
// opt-in nor a watchdog outside the list, and prefers hardware.
func FuzzChoose(f *testing.F) {
	f.Add("watchdog0", SoftIdentity, "watchdog1", "i6300ESB timer", false)
	f.Add("watchdog01", "", "watchdog7", SoftIdentity, true)
	f.Fuzz(func(t *testing.T, n1, id1, n2, id2 string, soft bool) {
		var ws []Info
		for _, e := range [][2]string{{n1, id1}, {n2, id2}} {
			if i, ok := Index(e[0]); ok {
				if e[0] != fmt.Sprintf("watchdog%d", i) {
					t.Fatalf("Index(%q) = %d: not its canonical name", e[0], i)
				}
				ws = append(ws, Info{Index: i, Name: e[0], Identity: e[1]})
			}
		}
		got, ok := Choose(ws, soft)
		hw := false
		for _, w := range ws {
			hw = hw || !w.Soft()
		}
		switch {
		case ok && !slices.Contains(ws, got):
			t.Fatalf("Choose(%v) = %v: not in the list", ws, got)
		case ok && got.Soft() && (!soft || hw):
			t.Fatalf("Choose(%v, soft=%v) = softdog", ws, soft)
		case !ok && (hw || (soft && len(ws) > 0)):
			t.Fatalf("Choose(%v, soft=%v) found nothing", ws, soft)
		}
	})
}
