package report

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
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
