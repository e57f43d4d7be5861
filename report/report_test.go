// SPDX-License-Identifier: Apache-2.0

package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/internal/minjson/jsontest"
)

func TestRoundTrip(t *testing.T) {
	tries := 2
	r := &Report{Mode: "slot", Slot: "b", TriesLeft: &tries, Overlay: "tmpfs", Init: "/sbin/init",
		Devices: map[string]string{"root": "/dev/vda3"}, Fallbacks: []Fallback{{Slot: "a", Reason: "x"}}}
	r.AddPhase("verity", time.Now().Add(-1500*time.Microsecond))
	r.Warn("data partition %s missing", "PARTLABEL=data")
	p := filepath.Join(t.TempDir(), "keel", "boot.json")
	if err := r.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v\nwant %+v", got, r)
	}
	if got.Phases[0].Ms < 1.5 {
		t.Errorf("phase took %v ms, want >= 1.5", got.Phases[0].Ms)
	}
	if got.Warnings[0] != "data partition PARTLABEL=data missing" {
		t.Errorf("warning %q", got.Warnings[0])
	}
}

var odd = []string{
	"", "plain", `"quoted"`, `back\slash`, "line\nfeed\r\n", "\t\b\f", "\x00\x01\x1f\x7f", "<script>&amp;</script>",
	"\xff\xfe", "a\xc3", "\xed\xa0\x80", "é中😀", "\u2028\u2029", "\ufffd", "\\u0041", "'",
}

// reports are many reports: every field set and unset, odd strings
// everywhere.
func reports() []*Report {
	zero, minus := 0, -3
	out := []*Report{
		{},
		{Phases: []Phase{}, Fallbacks: []Fallback{}, Devices: map[string]string{}, Warnings: []string{}, Data: &Data{}, StrayPartitions: []Stray{}, Refused: []Refused{}, EtcMerge: &EtcMerge{Conflicts: []EtcConflict{}}},
		{Watchdog: &Watchdog{}},
		{Watchdog: &Watchdog{Device: "/dev/watchdog0", Identity: "i6300ESB timer", Timeout: 30}},
		{Watchdog: &Watchdog{None: "no hardware watchdog appeared", Timeout: -1}},
		{SystemDisk: "/dev/vda", StrayPartitions: []Stray{{Device: "/dev/sda1", Label: "root-a", Disk: "/dev/sda"}, {}}, LoaderPartUUID: "8f3a1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b"},
		{Version: 1, Mode: "slot", Slot: "a", SlotReason: "highest priority", TriesLeft: &zero,
			Fallbacks: []Fallback{{Slot: "b", Reason: "verity: bad root hash"}}, ImageID: "img-42", RootHash: "ab12",
			Authenticated: true, HashSource: "header", KeyID: "k1", Overlay: "tmpfs",
			Devices: map[string]string{"root": "/dev/vda3", "bootstate": "/dev/vda1", "data": "/dev/mapper/data"},
			Data: &Data{Device: "/dev/vda4", FSType: "btrfs", Encrypted: true, Volatile: true, Created: []string{"@var", "@home"},
				Seeded: true, Upper: "/data/upper/img-42", FreshUpper: true, UpperReadOnly: true, Pruned: []string{"img-41"}, SetAside: []string{"/run/keel/data/@overlay/b/.set-aside/img-40"}, Binds: []string{"/var", "/home"}},
			EtcMerge: &EtcMerge{FromSlot: "b", FromImage: "img-41", Base: "slot b", Carried: 3, Deleted: 1, Same: 2,
				Skipped: []string{"/etc/initctl: a fifo"}, Conflicts: []EtcConflict{{Path: "/etc/motd", Reason: "both"}}, Ms: 12.5, InPlace: true},
			Phases:   []Phase{{Name: "mounts", Ms: 0}, {Name: "modules", Ms: 12.345}, {Name: "verity", Ms: 1e-7}, {Name: "big", Ms: 1e21}, {Name: "neg", Ms: -0.5}},
			Warnings: []string{"w1", "w2"}, Init: "/sbin/init", Failure: "mount: no such device", Locked: true, TrustedKeys: []string{"a2V5MQ==", "a2V5Mg=="},
			Refused: []Refused{{Option: "data=/dev/sdb1", Reason: "refused: initramfs is locked"}, {Option: "rd.break"}}},
		{Mode: "plain", TriesLeft: &minus, Init: "/lib/systemd/systemd"},
	}
	for i, s := range odd {
		out = append(out, &Report{Mode: s, Slot: s, SlotReason: s, Fallbacks: []Fallback{{Slot: s, Reason: s}}, ImageID: s,
			RootHash: s, HashSource: s, KeyID: s, Overlay: s, Devices: map[string]string{s: s, odd[(i+1)%len(odd)]: "x"},
			Data:     &Data{Device: s, FSType: s, Created: []string{s}, Upper: s, Pruned: []string{s, s}, SetAside: []string{s}, Binds: []string{s}},
			EtcMerge: &EtcMerge{FromSlot: s, FromImage: s, NoBase: s, Skipped: []string{s}, Conflicts: []EtcConflict{{Path: s, Reason: s}}, Error: s, Carried: i},
			Phases:   []Phase{{Name: s, Ms: float64(i) / 7}}, Warnings: []string{s}, Init: s, Failure: s,
			SystemDisk: s, StrayPartitions: []Stray{{Device: s, Label: s, Disk: s}}, LoaderPartUUID: s, Refused: []Refused{{Option: s, Reason: s}},
			Watchdog: &Watchdog{Device: s, Identity: s, None: s, Timeout: i}})
	}
	return out
}

func TestMarshalLikeEncodingJSON(t *testing.T) {
	for _, r := range reports() {
		checkLikeEncodingJSON(t, r)
	}
}

// checkLikeEncodingJSON: Marshal writes r as encoding/json does, and what
// encoding/json reads back, Parse reads back too.
func checkLikeEncodingJSON(t *testing.T, r *Report) {
	t.Helper()
	got, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n%s\nencoding/json:\n%s", got, want)
	}
	var back Report
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(got)
	if err != nil {
		t.Fatalf("Parse(%s): %v", got, err)
	}
	if !reflect.DeepEqual(*parsed, back) {
		t.Errorf("Parse(%s)\n= %#v\nencoding/json: %#v", got, *parsed, back)
	}
}

func TestMarshalNaN(t *testing.T) {
	r := &Report{Phases: []Phase{{Name: "x", Ms: math.NaN()}}}
	if _, err := r.Marshal(); err == nil {
		t.Fatal("NaN marshalled")
	}
	err := r.Write(filepath.Join(t.TempDir(), "boot.json"))
	if err == nil || !strings.Contains(err.Error(), "boot report: ") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("Write error %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v, want one wrapping fs.ErrNotExist", err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"mode":"slot"`, "invalid JSON at byte 14: expected ',' or '}' after object member, found end of input"},
		{`"x"`, "top level: expected an object, found string"},
		{`{"tries_left":"2"}`, "tries_left: expected an integer, found string"},
		{`{"devices":{"root":1}}`, "devices.root: expected a string, found number"},
		{`{"data":{"created":[1]}}`, "data.created.0: expected a string, found number"},
		{`{"phases":[{"name":"a","ms":"1"}]}`, "phases.0.ms: expected a number, found string"},
		{`{"fallbacks":{}}`, "fallbacks: expected an array, found object"},
		{`{"locked":1}`, "locked: expected a boolean, found number"},
	} {
		p := filepath.Join(dir, "boot.json")
		if err := os.WriteFile(p, []byte(c.in), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(p)
		if want := "boot report " + p + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("Read(%s): error %v\nwant %s", c.in, err, want)
		}
	}
}

// FuzzParse checks Parse never panics, and that what it accepts encoding/json
// reads the same, except where encoding/json is stricter about numbers (it
// rejects 1.0 or 1e0 for an int) or jsontest.PlainKeys says the readings may differ;
// and that Marshal writes what Parse read as encoding/json would.
func FuzzParse(f *testing.F) {
	for _, r := range reports() {
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"tries_left":1.0,"TRIES_LEFT":2,"data":{"device":"a"},"data":{"upper":"b"},"devices":{"a":null}}`))
	f.Add([]byte(`{"phases":[null],"warnings":[null],"tries_left":null,"data":null,"devices":null,"unknown":[{}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := Parse(doc)
		if err != nil {
			return
		}
		if b, err := got.Marshal(); err != nil {
			t.Fatalf("Marshal of what Parse read: %v", err)
		} else if want, _ := json.Marshal(got); !bytes.Equal(b, want) {
			t.Fatalf("Marshal:\n%s\nencoding/json:\n%s", b, want)
		}
		jsontest.ReadsSame(t, doc, got)
	})
}

// TestMarshalEveryField: every field of Report and of what it holds, set
// by reflection (jsontest.Fill), written and read back as encoding/json
// does — a field added to the types but not to the hand-written codec
// fails here, where the reports above only carry the fields that existed
// when they were written.
func TestMarshalEveryField(t *testing.T) {
	var r Report
	jsontest.Fill(t, &r)
	r.Version = Version
	checkLikeEncodingJSON(t, &r)
}
