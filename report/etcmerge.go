// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"

	"github.com/keel-boot/keel/internal/minjson"
)

// EtcMerge is the /etc merge made at the first boot of an image with a
// persistent upper (docs/data.md): where the local changes came from, what
// was carried, and the conflicts, where the local version won. The same
// record is kept next to the upper (etc-merge.json) for slotctl status.
type EtcMerge struct {
	FromSlot  string `json:"from_slot"`
	FromImage string `json:"from_image"`
	// Base says where the old image's own /etc was read ("slot b"); NoBase
	// says why there was none (every local change carried, no conflicts).
	Base      string        `json:"base,omitempty"`
	NoBase    string        `json:"no_base,omitempty"`
	Carried   int           `json:"carried"`
	Deleted   int           `json:"deleted"`
	Same      int           `json:"same"`
	Skipped   []string      `json:"skipped,omitempty"`
	Conflicts []EtcConflict `json:"conflicts,omitempty"`
	Ms        float64       `json:"ms"`
	// InPlace: the new upper started as a btrfs snapshot of the old one,
	// edited in place (docs/data.md); otherwise carried files were copied.
	InPlace bool `json:"in_place,omitempty"`
	// Error is set when the merge failed: the image's own /etc is used.
	Error string `json:"error,omitempty"`
}

// EtcConflict is a path where the local version won over a change in the
// new image (or an account entry that could not be reconciled).
type EtcConflict struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Summary is the one console line of the merge.
func (m *EtcMerge) Summary() string {
	if m.Error != "" {
		return fmt.Sprintf("/etc merge from slot %s (image %s) FAILED, the new image's /etc is used: %s", m.FromSlot, m.FromImage, m.Error)
	}
	base := "against " + m.Base
	if m.Base == "" {
		base = "without a base (" + m.NoBase + ")"
	}
	return fmt.Sprintf("/etc merged from slot %s (image %s) %s: %d carried, %d deleted, %d skipped, %d conflicts", m.FromSlot, m.FromImage, base, m.Carried, m.Deleted, len(m.Skipped), len(m.Conflicts))
}

// Marshal encodes m as encoding/json does.
func (m *EtcMerge) Marshal() ([]byte, error) {
	var w minjson.Writer
	m.write(&w)
	return w.Bytes()
}

func (m *EtcMerge) write(w *minjson.Writer) {
	w.BeginObject()
	w.Key("from_slot")
	w.String(m.FromSlot)
	w.Key("from_image")
	w.String(m.FromImage)
	optString(w, "base", m.Base)
	optString(w, "no_base", m.NoBase)
	for _, n := range []struct {
		k string
		v int
	}{{"carried", m.Carried}, {"deleted", m.Deleted}, {"same", m.Same}} {
		w.Key(n.k)
		w.Int(int64(n.v))
	}
	optStrings(w, "skipped", m.Skipped)
	optObjects(w, "conflicts", m.Conflicts, func(c EtcConflict) []string {
		return []string{"path", c.Path, "reason", c.Reason}
	})
	w.Key("ms")
	w.Float(m.Ms)
	optBool(w, "in_place", m.InPlace)
	optString(w, "error", m.Error)
	w.EndObject()
}

// ParseEtcMerge decodes an etc-merge.json.
func ParseEtcMerge(b []byte) (*EtcMerge, error) {
	v, err := minjson.Decode(b)
	if err != nil {
		return nil, err
	}
	n := minjson.Root(v)
	m := parseEtcMerge(n)
	if err := n.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func parseEtcMerge(n minjson.Node) *EtcMerge {
	m := &EtcMerge{
		FromSlot: n.Opt("from_slot").Str(), FromImage: n.Opt("from_image").Str(),
		Base: n.Opt("base").Str(), NoBase: n.Opt("no_base").Str(),
		Carried: n.Opt("carried").Int(), Deleted: n.Opt("deleted").Int(), Same: n.Opt("same").Int(),
		Skipped: n.Opt("skipped").Strings(), Ms: n.Opt("ms").Float(), InPlace: n.Opt("in_place").Bool(),
		Error: n.Opt("error").Str(),
	}
	if items := n.Opt("conflicts").Items(); items != nil {
		m.Conflicts = make([]EtcConflict, 0, len(items))
		for _, c := range items {
			m.Conflicts = append(m.Conflicts, EtcConflict{Path: c.Opt("path").Str(), Reason: c.Opt("reason").Str()})
		}
	}
	return m
}
