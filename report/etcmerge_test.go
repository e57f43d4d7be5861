// SPDX-License-Identifier: Apache-2.0

package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keel-boot/keel/internal/minjson/jsontest"
)

func etcMerges() []*EtcMerge {
	var out []*EtcMerge
	for _, r := range reports() {
		if r.EtcMerge != nil {
			out = append(out, r.EtcMerge)
		}
	}
	return out
}

// etc-merge.json is written by the init without encoding/json and read by
// slotctl: the same bytes, read back the same.
func TestEtcMergeLikeEncodingJSON(t *testing.T) {
	for _, m := range etcMerges() {
		got, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(m); !bytes.Equal(got, want) {
			t.Errorf("Marshal:\n%s\nencoding/json:\n%s", got, want)
		}
		back, err := ParseEtcMerge(got)
		if err != nil {
			t.Fatal(err)
		}
		jsontest.ReadsSame(t, got, back)
	}
	if _, err := ParseEtcMerge([]byte(`{"carried":"x"}`)); err == nil {
		t.Error(`ParseEtcMerge accepted "carried":"x"`)
	}
}

func TestEtcMergeSummary(t *testing.T) {
	m := &EtcMerge{FromSlot: "a", FromImage: "v1", Base: "slot a", Carried: 4, Deleted: 1, Conflicts: []EtcConflict{{Path: "/etc/motd"}}}
	if got, want := m.Summary(), "/etc merged from slot a (image v1) against slot a: 4 carried, 1 deleted, 0 skipped, 1 conflicts"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	m.Base, m.NoBase = "", "slot a now holds image v3"
	if got := m.Summary(); !strings.Contains(got, "without a base (slot a now holds image v3)") {
		t.Errorf("Summary = %q", got)
	}
	m.Error = "disk full"
	if got := m.Summary(); !strings.Contains(got, "FAILED, the new image's /etc is used: disk full") {
		t.Errorf("Summary = %q", got)
	}
}

// FuzzParseEtcMerge: never panics; what it accepts encoding/json reads the
// same, and Marshal writes it back as encoding/json would.
func FuzzParseEtcMerge(f *testing.F) {
	for _, m := range etcMerges() {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"conflicts":[null],"skipped":null,"carried":1.0}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := ParseEtcMerge(doc)
		if err != nil {
			return
		}
		if b, err := got.Marshal(); err != nil {
			t.Fatalf("Marshal of what ParseEtcMerge read: %v", err)
		} else if want, _ := json.Marshal(got); !bytes.Equal(b, want) {
			t.Fatalf("Marshal:\n%s\nencoding/json:\n%s", b, want)
		}
		jsontest.ReadsSame(t, doc, got)
	})
}

// TestEtcMergeEveryField: as TestMarshalEveryField, for etc-merge.json.
func TestEtcMergeEveryField(t *testing.T) {
	var m EtcMerge
	jsontest.Fill(t, &m)
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(&m); !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n%s\nencoding/json:\n%s", got, want)
	}
	back, err := ParseEtcMerge(got)
	if err != nil {
		t.Fatal(err)
	}
	jsontest.ReadsSame(t, got, back)
}
