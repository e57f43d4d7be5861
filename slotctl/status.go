// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
)

// statusView is what slotctl status shows, and its JSON form.
type statusView struct {
	BootState   string `json:"bootstate"`
	Sequence    uint64 `json:"sequence"`
	Initialised bool   `json:"initialised"`
	// RollbackFloor, LastGood and DataSeen are the machine's fields of the
	// boot state (docs/formats.md).
	RollbackFloor uint64 `json:"rollback_floor"`
	LastGood      string `json:"last_good,omitempty"` // SLOT/IMAGE-ID
	DataSeen      bool   `json:"data_seen"`
	// UnfinishedDataMounts is nonzero when the last boots began mounting
	// the data partition and never finished with it (a hang, a kernel
	// panic, in its mount or its preparation for the new root): at
	// bootstate.DataMountLimit the next boot leaves it alone.
	UnfinishedDataMounts uint8          `json:"unfinished_data_mounts"`
	Warnings             []string       `json:"warnings,omitempty"`
	Slots                []slotView     `json:"slots"`
	Boot                 *report.Report `json:"boot,omitempty"`
	BootError            string         `json:"boot_error,omitempty"`
	// EtcMerge is the /etc merge that made the running upper (kept next
	// to it), whichever boot it happened in.
	EtcMerge *report.EtcMerge `json:"etc_merge,omitempty"`
	// SetAside lists the uppers on the data partition that a boot of the
	// last good image set aside: what a trial changed in /, kept until its
	// image leaves the slot (docs/data.md).
	SetAside []string `json:"set_aside,omitempty"`
}

type slotView struct {
	Slot        string      `json:"slot"`
	Priority    uint8       `json:"priority"`
	Tries       uint8       `json:"tries"`
	Good        bool        `json:"good"`
	Unconfirmed uint8       `json:"unconfirmed"`
	Bootable    bool        `json:"bootable"` // boot counting may choose it (State.Boots)
	Running     bool        `json:"running"`
	Reason      string      `json:"reason,omitempty"`
	Header      *headerView `json:"header,omitempty"`
	HeaderError string      `json:"header_error,omitempty"`
}

// runStatus shows the boot state of both slots, their headers and the
// running boot.
func runStatus(e *env, args []string) error {
	fs := newFlags(e, "status")
	t := targetFlags(e, fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	v, err := t.status()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.print(e.stdout)
	return nil
}

// status gathers the view; only an unreadable boot state is an error.
func (t *target) status() (*statusView, error) {
	p, err := t.open(bootstate.Label, false)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	s, warnings, err := bootstate.Load(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	v := &statusView{BootState: p.String(), Sequence: s.Seq, Initialised: s.Initialised, Warnings: warnings,
		RollbackFloor: s.RollbackFloor, DataSeen: s.DataSeen, UnfinishedDataMounts: s.UnfinishedDataMounts}
	if s.LastGood.Slot != "" {
		v.LastGood = string(s.LastGood.Slot) + "/" + s.LastGood.ImageID
	}
	if r, err := t.bootReport(); err != nil {
		v.BootError = err.Error()
	} else {
		v.Boot = r
		if v.EtcMerge, err = lastEtcMerge(r); err != nil {
			v.Warnings = append(v.Warnings, err.Error())
		}
		v.SetAside = setAsideUppers(r, filepath.Join(t.root, datapart.DefaultRoot))
	}
	for _, x := range slots.Slots() {
		v.Slots = append(v.Slots, t.slotView(s, x, v.Boot))
	}
	return v, nil
}

func (t *target) slotView(s bootstate.State, x slots.Slot, r *report.Report) slotView {
	st := s.Slot(x)
	sv := slotView{
		Slot: string(x), Priority: st.Priority, Tries: st.Tries, Good: st.Good, Unconfirmed: st.Unconfirmed,
		Bootable: s.Boots(x), Reason: st.Reason,
		Running: r != nil && r.Mode == "slot" && r.Slot == string(x),
	}
	p, err := t.open(x.VerityLabel(), false)
	if err != nil {
		sv.HeaderError = err.Error()
		return sv
	}
	defer p.Close()
	h, err := slots.ReadHeader(p)
	if err != nil {
		sv.HeaderError = fmt.Sprintf("%s: %v", p, err)
		return sv
	}
	hv := newHeaderView(h)
	sv.Header = &hv
	return sv
}

func (v *statusView) print(w io.Writer) {
	fmt.Fprintf(w, "boot state: %s, sequence %d", v.BootState, v.Sequence)
	if !v.Initialised {
		fmt.Fprint(w, " (no valid record: defaults)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tPRIORITY\tTRIES\tGOOD\tUNCONFIRMED\tIMAGE\tROLLBACK\tROOT HASH\tKEY\tREASON")
	for _, s := range v.Slots {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.name(), s.Priority, s.Tries, yesNo(s.Good), s.Unconfirmed, s.image(), s.rollback(), s.rootHash(), s.key(), s.Reason)
	}
	tw.Flush()
	for _, s := range v.Slots {
		if s.HeaderError != "" {
			fmt.Fprintf(w, "slot %s header: %s\n", s.Slot, s.HeaderError)
		}
	}
	fmt.Fprintf(w, "rollback floor: %d; last good: %s; data partition seen: %s\n", v.RollbackFloor, orDash(v.LastGood), yesNo(v.DataSeen))
	if n := v.UnfinishedDataMounts; n > 0 {
		fmt.Fprintf(w, "unfinished mounts of the data partition: %d (boots that began mounting it and never finished with it; at %d the next boot leaves it alone)\n", n, bootstate.DataMountLimit)
	}
	v.printBoot(w)
	if m := v.EtcMerge; m != nil {
		fmt.Fprintf(w, "last %s\n", m.Summary())
		for _, c := range m.Conflicts {
			fmt.Fprintf(w, "  conflict: %s: %s\n", c.Path, c.Reason)
		}
	}
	for _, p := range v.SetAside {
		fmt.Fprintf(w, "set aside: %s (a trial's upper: what it changed in /, kept until its image leaves the slot)\n", p)
	}
	for _, s := range v.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}

// setAsideUppers lists the set-aside uppers of every slot on the running
// system's data partition, found from the running upper
// (DATA/@overlay/SLOT/ID): DATA/@overlay/*/.set-aside/*; under dataRoot,
// where the data partition is mounted, in a boot whose / is not on it
// (overlay=tmpfs or off: boot.json names no upper, but /var is bound).
func setAsideUppers(r *report.Report, dataRoot string) []string {
	if r == nil || r.Data == nil || r.Data.Volatile {
		return nil
	}
	overlay := filepath.Join(dataRoot, datapart.Overlay)
	if r.Data.Upper != "" {
		overlay = filepath.Dir(filepath.Dir(r.Data.Upper))
	}
	found, _ := filepath.Glob(filepath.Join(overlay, "*", datapart.SetAside, "*"))
	return found
}

func (v *statusView) printBoot(w io.Writer) {
	r := v.Boot
	switch {
	case v.BootError != "":
		fmt.Fprintf(w, "running: unknown: %s\n", v.BootError)
		return
	case r == nil:
		fmt.Fprintln(w, "running: nothing (disk image)")
		return
	case r.Mode != "slot":
		fmt.Fprintf(w, "running: not from a slot (%s mode)\n", r.Mode)
		return
	}
	fmt.Fprintf(w, "running: slot %s (*), image %s: %s\n", r.Slot, r.ImageID, r.SlotReason)
	if r.Demoted != "" {
		fmt.Fprintf(w, "demoted this boot: slot %s: too many boots went unconfirmed\n", r.Demoted)
	}
	for _, f := range r.Fallbacks {
		fmt.Fprintf(w, "fallback this boot: slot %s failed (%s): %s\n", f.Slot, orDash(f.Class), f.Reason)
	}
}

func (s slotView) name() string {
	if s.Running {
		return s.Slot + "*"
	}
	return s.Slot
}

func (s slotView) image() string {
	if s.Header == nil {
		return "-"
	}
	return s.Header.ImageID
}

func (s slotView) rollback() string {
	if s.Header == nil {
		return "-"
	}
	return fmt.Sprint(s.Header.RollbackIndex)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s slotView) rootHash() string {
	if s.Header == nil || len(s.Header.RootHash) < 12 {
		return "-"
	}
	return s.Header.RootHash[:12] + "…"
}

func (s slotView) key() string {
	switch {
	case s.Header == nil:
		return "-"
	case !s.Header.Signed:
		return "unsigned"
	}
	return s.Header.KeyID[:8] + "…"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
