// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"fmt"
	"strings"
)

// StatePath is where the init writes its undo record before switch_root,
// next to the shutdown program; after systemd-shutdown's pivot it is
// /keel-undo.
const StatePath = "/run/initramfs/keel-undo"

// stateMagic heads the record and names its version.
const stateMagic = "keel-undo 1"

// Mounted is a mount the init made, as the booted system sees it.
type Mounted struct {
	Role   string // what it is for: root, image, upper, data, bind
	Target string // where, in the booted system: /, /var, /run/keel/lower
	FSType string // "" for a bind
	Source string
}

// State is what the init set up at boot and the shutdown program undoes:
// its mounts (for the log: unmounting follows the live mount table) and its
// device-mapper devices, both in the order they were made.
type State struct {
	Mounts []Mounted
	DM     []string
}

// Marshal renders the record: a header line, then one line per mount
// ("mount ROLE TARGET FSTYPE SOURCE") and device ("dm NAME"), fields
// escaped like /proc/self/mountinfo, "-" for an empty field.
func (s State) Marshal() []byte {
	var b strings.Builder
	b.WriteString(stateMagic + "\n")
	for _, m := range s.Mounts {
		fmt.Fprintf(&b, "mount %s %s %s %s\n", field(m.Role), field(m.Target), field(m.FSType), field(m.Source))
	}
	for _, d := range s.DM {
		fmt.Fprintf(&b, "dm %s\n", field(d))
	}
	return []byte(b.String())
}

func field(s string) string {
	if s == "" || s == "-" {
		return "-"
	}
	return Escape(s)
}

func unfield(s string) string {
	if s == "-" {
		return ""
	}
	return Unescape(s)
}

// ParseState reads a record written by Marshal.
func ParseState(b []byte) (State, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if lines[0] != stateMagic {
		return State{}, fmt.Errorf("undo record: first line %q: expected %q", lines[0], stateMagic)
	}
	var s State
	for i, line := range lines[1:] {
		f := spaceFields(line)
		switch {
		case len(f) == 5 && f[0] == "mount":
			m := Mounted{Role: unfield(f[1]), Target: unfield(f[2]), FSType: unfield(f[3]), Source: unfield(f[4])}
			if !strings.HasPrefix(m.Target, "/") {
				return State{}, fmt.Errorf("undo record line %d: mount target %q: expected an absolute path", i+2, m.Target)
			}
			s.Mounts = append(s.Mounts, m)
		case len(f) == 2 && f[0] == "dm":
			name := unfield(f[1])
			if name == "" || strings.ContainsAny(name, "/") {
				return State{}, fmt.Errorf("undo record line %d: device-mapper name %q: expected a name without /", i+2, name)
			}
			s.DM = append(s.DM, name)
		default:
			return State{}, fmt.Errorf("undo record line %d %q: expected \"mount ROLE TARGET FSTYPE SOURCE\" or \"dm NAME\"", i+2, line)
		}
	}
	return s, nil
}
