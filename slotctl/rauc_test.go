// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
)

func TestParseRaucCall(t *testing.T) {
	tests := []struct {
		args []string
		want raucCall
		err  string
	}{
		{[]string{"get-primary"}, raucCall{op: "get-primary"}, ""},
		{[]string{"get-current"}, raucCall{op: "get-current"}, ""},
		{[]string{"set-primary", "b"}, raucCall{op: "set-primary", slot: "b"}, ""},
		{[]string{"get-state", "A"}, raucCall{op: "get-state", slot: "a"}, ""},
		{[]string{"set-state", "a", "good"}, raucCall{op: "set-state", slot: "a", good: true}, ""},
		{[]string{"set-state", "b", "bad"}, raucCall{op: "set-state", slot: "b"}, ""},
		{nil, raucCall{}, "expected a RAUC backend call"},
		{[]string{"get-bootname"}, raucCall{}, `unknown RAUC backend call "get-bootname"`},
		{[]string{"get-primary", "a"}, raucCall{}, "get-primary takes 0 arguments (none), got 1"},
		{[]string{"set-primary"}, raucCall{}, "set-primary takes 1 arguments (SLOT), got 0"},
		{[]string{"set-state", "a"}, raucCall{}, "set-state takes 2 arguments (SLOT good|bad), got 1"},
		{[]string{"get-state", "rootfs.0"}, raucCall{}, `bootname "rootfs.0": expected a or b`},
		{[]string{"set-state", "a", "GOOD"}, raucCall{}, `state "GOOD": expected good or bad`},
	}
	for _, tt := range tests {
		got, err := parseRaucCall(tt.args)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("parseRaucCall(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, new(usageError)) {
			t.Errorf("parseRaucCall(%q) error %v; want a usage error containing %q", tt.args, err, tt.err)
		}
	}
}

func TestArgsOf(t *testing.T) {
	tests := []struct{ argv, want []string }{
		{[]string{"/usr/bin/slotctl", "status"}, []string{"status"}},
		{[]string{"/usr/libexec/keel-rauc-backend", "get-state", "a"}, []string{"rauc-backend", "get-state", "a"}},
		{[]string{"keel-rauc-backend"}, []string{"rauc-backend"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := argsOf(tt.argv); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("argsOf(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestParseRaucTries(t *testing.T) {
	for v, want := range map[string]int{"": bootstate.DefaultTries, "1": 1, "255": 255} {
		if n, err := parseRaucTries(v); n != want || err != nil {
			t.Errorf("parseRaucTries(%q) = %d, %v; want %d", v, n, err, want)
		}
	}
	for _, v := range []string{"0", "256", "-1", "three", " 3"} {
		if _, err := parseRaucTries(v); err == nil || !strings.Contains(err.Error(), "KEEL_RAUC_TRIES") {
			t.Errorf("parseRaucTries(%q): %v, want an error naming KEEL_RAUC_TRIES", v, err)
		}
	}
}

// keyedDisk makes a blank keel disk image and a signing key in a
// temporary directory.
func keyedDisk(t *testing.T) (dir, disk, key string) {
	t.Helper()
	dir = t.TempDir()
	disk = makeDisk(t, dir, "4MiB")
	key = filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	return dir, disk, key
}

// rauc runs the backend the way RAUC does, on a disk image with a boot
// report saying which slot runs, and returns stdout, failing t unless it
// exits 0.
func rauc(t *testing.T, environ map[string]string, disk, rep string, call ...string) string {
	t.Helper()
	return mustRun(t, environ, append([]string{"rauc-backend", "--disk", disk, "--boot-report", rep}, call...)...)
}

// writeSlot writes a sealed image into slot x of disk as RAUC's raw
// handler does: bytes only, no boot state.
func writeSlot(t *testing.T, disk string, x slots.Slot, img, ver string) {
	t.Helper()
	in, err := openInputs(img, ver, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, w := range []struct {
		label string
		f     *os.File
		size  int64
	}{{x.RootLabel(), in.image, in.imageSize}, {x.VerityLabel(), in.verity, in.veritySize}} {
		p, err := openInDisk(disk, w.label, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := copyInto(w.f, w.size, p); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
}

// TestRaucBackendInstallFlow walks through the calls RAUC makes for an
// install and its confirmation, while slot a runs: set-state b bad, write,
// set-primary b; then, b running, set-state b good.
func TestRaucBackendInstallFlow(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	imgA, verA := sealedImage(t, dir, "image-a", key)
	imgB, verB := sealedImage(t, dir, "image-b", key)
	onA := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "image-a"})

	// A blank disk: boot counting would try a, and neither slot holds an image.
	if got := rauc(t, nil, disk, onA, "get-primary"); got != "a\n" {
		t.Errorf("get-primary on a blank disk: %q, want a", got)
	}
	for _, x := range []string{"a", "b"} {
		if got := rauc(t, nil, disk, onA, "get-state", x); got != "bad\n" {
			t.Errorf("get-state %s with no image: %q, want bad", x, got)
		}
	}
	writeSlot(t, disk, "a", imgA, verA)
	mustRun(t, nil, "mark-good", "a", "--disk", disk)
	if got := rauc(t, nil, disk, onA, "get-state", "a"); got != "good\n" {
		t.Errorf("get-state a once good: %q", got)
	}
	if got := rauc(t, nil, disk, onA, "get-current"); got != "a\n" {
		t.Errorf("get-current: %q, want a", got)
	}

	// The install: RAUC marks the target bad, writes it, activates it,
	// which flushes what RAUC wrote first (its raw handler does not).
	rauc(t, nil, disk, onA, "set-state", "b", "bad")
	writeSlot(t, disk, "b", imgB, verB)
	var synced []string
	syncPartition = func(p *partition) error {
		// Before the boot state names b: it is still the bad slot RAUC made it.
		bs, err := openInDisk(disk, bootstate.Label, false)
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		if s, _, err := bootstate.Load(bs); err != nil || s.Slot("b").Priority != 0 {
			t.Errorf("flush of %s after the boot state named slot b (%+v, %v)", p.label, s.Slot("b"), err)
		}
		synced = append(synced, p.label)
		return p.Sync()
	}
	defer func() { syncPartition = (*partition).Sync }()
	if out := rauc(t, nil, disk, onA, "set-primary", "b"); !strings.Contains(out, "slot b boots next: 3 tries") {
		t.Errorf("set-primary b without KEEL_RAUC_TRIES: %s", out)
	}
	syncPartition = (*partition).Sync
	if want := []string{"root-b", "verity-b"}; !slices.Equal(synced, want) {
		t.Errorf("set-primary b flushed %q, want %q", synced, want)
	}
	rauc(t, map[string]string{"KEEL_RAUC_TRIES": "2"}, disk, onA, "set-primary", "b")
	want := [2]bootstate.SlotState{{Priority: 1, Tries: 3, Good: true}, {Priority: 2, Tries: 2}}
	if got := slotStates(statusJSON(t, "--disk", disk)); got != want {
		t.Errorf("after set-primary b: %+v, want %+v", got, want)
	}
	if got := rauc(t, nil, disk, onA, "get-primary"); got != "b\n" {
		t.Errorf("get-primary after set-primary b: %q", got)
	}
	if got := rauc(t, nil, disk, onA, "get-state", "b"); got != "good\n" {
		t.Errorf("get-state b on trial: %q, want good (boot counting boots it)", got)
	}

	// rauc status mark-active booted: a takes the top priority back and stays good.
	rauc(t, nil, disk, onA, "set-primary", "a")
	want = [2]bootstate.SlotState{{Priority: 2, Tries: 3, Good: true}, {Priority: 1, Tries: 2}}
	if got := slotStates(statusJSON(t, "--disk", disk)); got != want {
		t.Errorf("after set-primary a (running, good): %+v, want %+v", got, want)
	}
	rauc(t, map[string]string{"KEEL_RAUC_TRIES": "1"}, disk, onA, "set-primary", "b")

	// b boots and is confirmed by rauc status mark-good (set-state b good).
	onB := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b", ImageID: "image-b"})
	rauc(t, nil, disk, onB, "set-state", "b", "good")
	v := statusJSON(t, "--disk", disk)
	want = [2]bootstate.SlotState{{Priority: 1, Tries: 3, Good: true}, {Priority: 2, Tries: 1, Good: true}}
	if got := slotStates(v); got != want || v.LastGood != "b/image-b" {
		t.Errorf("after set-state b good: %+v, last good %q; want %+v, b/image-b", got, v.LastGood, want)
	}
}

// TestRaucBackendRefusals: the calls that would endanger the running
// system fail with a reason, and change nothing.
func TestRaucBackendRefusals(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	img, ver := sealedImage(t, dir, "img", key)
	writeSlot(t, disk, "a", img, ver)
	tries := 2
	onA := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "img", TriesLeft: &tries})
	before := statusJSON(t, "--disk", disk)

	tests := []struct {
		environ map[string]string
		call    []string
		err     string
	}{
		// What RAUC calls first when it is about to write the running slot.
		{nil, []string{"set-state", "a", "bad"}, "slotctl rauc-backend: set-state a bad: slot a is the running slot: refusing to mark bad it"},
		{nil, []string{"set-primary", "b"}, "no keel slot header"},
		{map[string]string{"KEEL_RAUC_TRIES": "0"}, []string{"set-primary", "b"}, `KEEL_RAUC_TRIES="0": expected a number of boots from 1 to 255`},
		{nil, []string{"get-state", "c"}, `bootname "c": expected a or b`},
	}
	for _, tt := range tests {
		r := slotctl(t, tt.environ, append([]string{"rauc-backend", "--disk", disk, "--boot-report", onA}, tt.call...)...)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, tt.err) {
			t.Errorf("rauc-backend %q: exit %d, stdout %q, stderr %q; want a failure containing %q", tt.call, r.code, r.stdout, r.stderr, tt.err)
		}
	}
	if after := statusJSON(t, "--disk", disk); after.Sequence != before.Sequence {
		t.Errorf("refused calls changed the boot state: sequence %d -> %d", before.Sequence, after.Sequence)
	}

	// On the running system (no --disk) only the running slot is confirmed.
	state := filepath.Join(dir, "bootstate")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := slotctl(t, nil, "rauc-backend", "--bootstate", state, "--boot-report", onA, "set-state", "b", "good")
	if r.code != 1 || !strings.Contains(r.stderr, "slot b is not the running slot (a)") {
		t.Errorf("set-state b good while a runs: exit %d, %s", r.code, r.stderr)
	}
	for _, rep := range []string{writeReport(t, t.TempDir(), report.Report{Mode: "single"}), filepath.Join(dir, "missing.json")} {
		r := slotctl(t, nil, "rauc-backend", "--bootstate", state, "--boot-report", rep, "get-current")
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "A/B slot") && !strings.Contains(r.stderr, "cannot tell which slot is running") {
			t.Errorf("get-current with %s: exit %d, stdout %q, stderr %q", rep, r.code, r.stdout, r.stderr)
		}
	}
}

// TestRaucSetPrimaryRollbackFloor: an image RAUC wrote below the rollback
// floor is not activated.
func TestRaucSetPrimaryRollbackFloor(t *testing.T) {
	dir, disk, key := keyedDisk(t)
	sub := filepath.Join(dir, "old")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	img, ver := makeImage(t, sub), filepath.Join(sub, "verity.img")
	mustRun(t, nil, "seal", "--image", img, "--out", ver, "--key", key, "--image-id", "old", "--rollback-index", "3")
	onA := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "new", RollbackIndex: 5})
	mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", onA)
	writeSlot(t, disk, "b", img, ver)
	r := slotctl(t, nil, "rauc-backend", "--disk", disk, "--boot-report", onA, "set-primary", "b")
	if r.code != 1 || !strings.Contains(r.stderr, "slot b: image old has rollback index 3, below this machine's floor 5") {
		t.Errorf("set-primary of index 3 over floor 5: exit %d, %s", r.code, r.stderr)
	}
}

// stateOf builds a boot state from fuzz bytes: per slot priority, tries,
// good and unconfirmed.
func stateOf(b []byte) bootstate.State {
	var s bootstate.State
	for i := range s.Slots {
		if len(b) < 4 {
			break
		}
		s.Slots[i] = bootstate.SlotState{Priority: b[0] % 4, Tries: b[1] % 5, Good: b[2]&1 == 1, Unconfirmed: b[3] % 5}
		if b[2]&2 != 0 { // a restore's mark (bootstate.ReasonRestoredGood)
			s.Slots[i].Reason = bootstate.ReasonRestoredGood
		}
		b = b[4:]
	}
	return s
}

func FuzzParseRaucCall(f *testing.F) {
	for _, s := range []string{"get-primary", "set-primary\x00a", "get-state\x00B", "set-state\x00a\x00good", "set-state\x00b\x00bad", "get-current", "set-state\x00a\x00ok", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		c, err := parseRaucCall(args)
		if err != nil {
			if !errors.As(err, new(usageError)) {
				t.Fatalf("parseRaucCall(%q): %v is not a usage error", args, err)
			}
			return
		}
		again := strings.Fields(c.String())
		if len(again) != len(args) {
			t.Fatalf("parseRaucCall(%q) = %+v: took %d arguments", args, c, len(args))
		}
		if c2, err := parseRaucCall(again); err != nil || c2 != c {
			t.Fatalf("parseRaucCall(%q) = %+v, reparsed %q as %+v, %v", args, c, again, c2, err)
		}
	})
}

func FuzzParseRaucTries(f *testing.F) {
	for _, s := range []string{"", "3", "0", "255", "256", "x", "+3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseRaucTries(s)
		if err != nil {
			if !strings.Contains(err.Error(), raucTriesEnv) {
				t.Fatalf("parseRaucTries(%q): %v does not name %s", s, err, raucTriesEnv)
			}
			return
		}
		if n < 1 || n > 255 {
			t.Fatalf("parseRaucTries(%q) = %d, outside 1 to 255", s, n)
		}
		if s != "" {
			if m, _ := strconv.Atoi(s); m != n {
				t.Fatalf("parseRaucTries(%q) = %d", s, n)
			}
		}
	})
}

// FuzzRaucSetPrimary: over any boot state, set-primary succeeds only when
// boot counting then chooses the slot; the running good slot stays good;
// get-primary and get-state agree with boot counting.
func FuzzRaucSetPrimary(f *testing.F) {
	f.Add([]byte{2, 3, 0, 0, 1, 3, 0, 0}, byte(1), byte(0), byte(3), byte(0))
	f.Add([]byte{2, 0, 1, 3, 1, 0, 1, 0}, byte(0), byte(0), byte(1), byte(2))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, byte(0), byte(2), byte(0), byte(1))
	f.Add([]byte{2, 0, 1, 3, 1, 3, 2, 0}, byte(0), byte(0), byte(0), byte(0)) // a good at its limit, b marked by a restore
	f.Fuzz(func(t *testing.T, b []byte, xi, ri, tries, limitb byte) {
		limit := int(limitb % 5) // the init's, 0: the default
		s := stateOf(b)
		all := slots.Slots()
		x := all[int(xi)%2]
		var running slots.Slot
		if ri < 2 {
			running = all[ri]
		}
		if p, err := raucPrimary(s, limit); err == nil && !raucGood(s, p, nil) {
			t.Fatalf("state %+v: get-primary %s, which get-state calls bad", s.Slots, p)
		}
		before := s
		err := raucSetPrimary(&s, x, running, int(tries), "", limit)
		if err != nil {
			// The running slot gets only its priority back: it may still
			// not be chosen (its tries used up, unconfirmed boots).
			if tries >= 1 && x != running {
				t.Fatalf("state %+v: set-primary %s (running %q, %d tries): %v", before.Slots, x, running, tries, err)
			}
			return
		}
		if p, err := raucPrimary(s, limit); err != nil || p != x {
			t.Fatalf("state %+v: set-primary %s succeeded but get-primary is %q, %v", before.Slots, x, p, err)
		}
		if !raucGood(s, x, nil) {
			t.Fatalf("state %+v: set-primary %s succeeded but get-state calls it bad", before.Slots, x)
		}
		if s.Slot(x.Other()).Reason == bootstate.ReasonRestoredGood {
			t.Fatalf("state %+v: set-primary %s left the restore's mark on %s", before.Slots, x, x.Other())
		}
		if x == running && (s.Slot(x).Good != before.Slot(x).Good || s.Slot(x).Tries != before.Slot(x).Tries) {
			t.Fatalf("state %+v: set-primary of the running slot %s changed its good flag or tries: %+v", before.Slots, x, s.Slot(x))
		}
	})
}
