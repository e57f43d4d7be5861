// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/etcmerge"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
)

// etcDiffView is what slotctl etc-diff shows, and its JSON form.
type etcDiffView struct {
	Upper   string            `json:"upper"` // the running upper's etc/
	Image   string            `json:"image"` // the image's /etc (the overlay's lower)
	Changes []etcmerge.Change `json:"changes"`
}

// runEtcDiff lists what is changed locally in /etc against the running
// image: what the next update carries over (docs/data.md).
func runEtcDiff(e *env, args []string) error {
	fs := newFlags(e, "etc-diff")
	reportPath := fs.String("boot-report", e.path(report.Path), "boot report naming the running upper")
	upper := fs.String("upper", "", "the upper's etc/ directory (default: from the boot report)")
	lower := fs.String("image", e.path(filepath.Join(mounts.DefaultLayout.Lower, "etc")), "the image's /etc")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *upper == "" {
		dir, err := runningUpper(*reportPath)
		if err != nil {
			return err
		}
		*upper = filepath.Join(dir, "upper", "etc")
	}
	if _, err := os.Stat(*lower); err != nil {
		return fmt.Errorf("the image's /etc: %w (give --image DIR)", err)
	}
	changes, err := etcmerge.Changes(*upper, *lower)
	if err != nil {
		return err
	}
	v := etcDiffView{Upper: *upper, Image: *lower, Changes: changes}
	if v.Changes == nil {
		v.Changes = []etcmerge.Change{}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.print(e.stdout)
	return nil
}

// runningUpper is the persistent upper directory of the running boot.
func runningUpper(reportPath string) (string, error) {
	r, err := report.Read(reportPath)
	if err != nil {
		return "", err
	}
	if r.Overlay != mounts.OverlayPersistent || r.Data == nil || r.Data.Upper == "" {
		return "", fmt.Errorf("this boot has no persistent upper (overlay %s): /etc changes are not kept, nothing would be carried", r.Overlay)
	}
	return r.Data.Upper, nil
}

func (v etcDiffView) print(w io.Writer) {
	carried := 0
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range v.Changes {
		note := ""
		if !c.Carried {
			note = "(not carried)"
		} else {
			carried++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Change, c.Kind, c.Path, note)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d local changes in /etc (%s) against the image, %d carried by the next update\n", len(v.Changes), v.Upper, carried)
}

// lastEtcMerge reads the record of the /etc merge that made the running
// upper; nil when there was none.
func lastEtcMerge(r *report.Report) (*report.EtcMerge, error) {
	if r == nil || r.Data == nil || r.Data.Upper == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(r.Data.Upper, datapart.EtcMergeFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := report.ParseEtcMerge(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(r.Data.Upper, datapart.EtcMergeFile), err)
	}
	return m, nil
}
