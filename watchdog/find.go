// SPDX-License-Identifier: Apache-2.0

package watchdog

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SoftIdentity is the identity of the softdog module: a kernel timer, not
// hardware. It catches a hung user space but not a hung kernel, so keel
// uses it only when the image opts in (docs/boot-sequence.md, "Watchdog").
const SoftIdentity = "Software Watchdog"

// Info is one watchdog the kernel registered.
type Info struct {
	Index    int    // N of watchdogN
	Name     string // watchdogN
	Identity string // sysfs identity, "" when unreadable
}

// Soft reports whether w is softdog.
func (w Info) Soft() bool { return w.Identity == SoftIdentity }

// DevPath is w's device node under dev ("/dev").
func (w Info) DevPath(dev string) string { return filepath.Join(dev, w.Name) }

// List reads the watchdogs registered under sysClass (/sys/class/watchdog),
// in index order. A missing directory is no watchdog, not an error.
func List(sysClass string) []Info {
	ents, err := os.ReadDir(sysClass)
	if err != nil {
		return nil
	}
	var out []Info
	for _, e := range ents {
		n, ok := Index(e.Name())
		if !ok {
			continue
		}
		id, _ := os.ReadFile(filepath.Join(sysClass, e.Name(), "identity"))
		out = append(out, Info{Index: n, Name: e.Name(), Identity: strings.TrimSpace(string(id))})
	}
	// sort.Slice, not the generic sort, which would be instantiated for
	// Info's shape alone: 12 KB of the init; sort.Slice's code is linked
	// already.
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Index parses a watchdog class name, "watchdogN" with N a decimal number
// without leading zeros.
func Index(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "watchdog")
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// Choose picks the watchdog to open among ws (in index order): the first
// hardware one, else softdog when soft allows it.
func Choose(ws []Info, soft bool) (Info, bool) {
	for _, w := range ws {
		if !w.Soft() {
			return w, true
		}
	}
	if soft && len(ws) > 0 { // all of them softdog
		return ws[0], true
	}
	return Info{}, false
}
