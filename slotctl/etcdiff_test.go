// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/report"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// etc-diff finds the running upper through the boot report and lists the
// changes against the image's /etc.
func TestEtcDiff(t *testing.T) {
	dir := t.TempDir()
	upper := filepath.Join(dir, "@overlay", "a", "v1")
	image := filepath.Join(dir, "lower", "etc")
	writeTree(t, filepath.Join(upper, "upper", "etc"), map[string]string{"hostname": "box", "issue": "Debian", "app.conf": "x"})
	writeTree(t, image, map[string]string{"hostname": "debian", "issue": "Debian"})
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", Overlay: "persistent", Data: &report.Data{Upper: upper}})
	out := mustRun(t, nil, "etc-diff", "--boot-report", rep, "--image", image)
	for _, want := range []string{"added", "/etc/app.conf", "modified", "/etc/hostname", "unchanged copy", "(not carried)", "3 local changes in /etc", "2 carried by the next update"} {
		if !strings.Contains(out, want) {
			t.Errorf("etc-diff lacks %q:\n%s", want, out)
		}
	}
	var v etcDiffView
	if err := json.Unmarshal([]byte(mustRun(t, nil, "etc-diff", "--json", "--boot-report", rep, "--image", image)), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Changes) != 3 || v.Changes[0].Path != "/etc/app.conf" || !v.Changes[0].Carried || v.Upper != filepath.Join(upper, "upper", "etc") {
		t.Errorf("etc-diff --json: %+v", v)
	}
	tmpfs := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Overlay: "tmpfs"})
	if r := slotctl(t, nil, "etc-diff", "--boot-report", tmpfs, "--image", image); r.code != 1 || !strings.Contains(r.stderr, "no persistent upper") {
		t.Errorf("etc-diff on a tmpfs boot: exit %d, %s", r.code, r.stderr)
	}
}

// status shows the conflicts of the merge that made the running upper.
func TestStatusShowsEtcMerge(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "bootstate")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(dir, "@overlay", "b", "v2")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	m := report.EtcMerge{FromSlot: "a", FromImage: "v1", Base: "slot a", Carried: 5, Conflicts: []report.EtcConflict{{Path: "/etc/motd", Reason: "changed locally and in the new image"}}}
	b, _ := m.Marshal()
	if err := os.WriteFile(filepath.Join(upper, datapart.EtcMergeFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "b", Overlay: "persistent", Data: &report.Data{Upper: upper}})
	out := mustRun(t, nil, "status", "--bootstate", state, "--boot-report", rep)
	for _, want := range []string{"last /etc merged from slot a (image v1) against slot a: 5 carried", "conflict: /etc/motd: changed locally and in the new image"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if v := statusJSON(t, "--bootstate", state, "--boot-report", rep); v.EtcMerge == nil || v.EtcMerge.Conflicts[0].Path != "/etc/motd" {
		t.Errorf("status --json etc_merge: %+v", v.EtcMerge)
	}
	// A trial's upper set aside by a boot of the last good image is shown.
	aside := filepath.Join(dir, "@overlay", "a", datapart.SetAside, "v3")
	if err := os.MkdirAll(filepath.Join(aside, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, nil, "status", "--bootstate", state, "--boot-report", rep); !strings.Contains(out, "set aside: "+aside+" (a trial's upper") {
		t.Errorf("status lacks the set-aside upper %s:\n%s", aside, out)
	}
	if v := statusJSON(t, "--bootstate", state, "--boot-report", rep); len(v.SetAside) != 1 || v.SetAside[0] != aside {
		t.Errorf("status --json set_aside: %q, want [%s]", v.SetAside, aside)
	}
}

// TestSetAsideUppersWithoutUpper: a boot whose / is not on the data
// partition (overlay=tmpfs: boot.json names no upper) still lists the
// set-aside uppers, at the data partition's mount point; a volatile boot,
// or one without a data partition, lists none.
func TestSetAsideUppersWithoutUpper(t *testing.T) {
	dir := t.TempDir()
	aside := filepath.Join(dir, datapart.Overlay, "a", datapart.SetAside, "v3")
	if err := os.MkdirAll(filepath.Join(aside, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfs := &report.Report{Overlay: "tmpfs", Data: &report.Data{Device: "/dev/vda6", Binds: []string{"/var", "/home"}}}
	if got := setAsideUppers(tmpfs, dir); len(got) != 1 || got[0] != aside {
		t.Errorf("overlay=tmpfs: %q, want [%s]", got, aside)
	}
	for _, r := range []*report.Report{{Overlay: "tmpfs", Data: &report.Data{Device: "/dev/vda6", Volatile: true}}, {Overlay: "tmpfs"}} {
		if got := setAsideUppers(r, dir); got != nil {
			t.Errorf("%+v: %q, want none", r.Data, got)
		}
	}
}
