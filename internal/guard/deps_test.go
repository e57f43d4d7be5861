// SPDX-License-Identifier: Apache-2.0

package guard

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keel-boot/keel/internal/build"
)

// forbidden are the packages the init must never link, and why. The sizes
// are what one call into the package added to out/init (built as the
// Makefile builds it, 3.29 MB on 2026-11-30); size is boot time, the kernel
// unpacks the initramfs before /init runs.
var forbidden = []struct{ pkg, why string }{
	{"encoding/json", "internal/minjson reads and writes the baked config and the boot report; " +
		"encoding/json's reflection codec added 299 KB"},
	{"os/exec", "the init starts one child, the emergency shell, with os.StartProcess (init/emergency.go); " +
		"os/exec added 49 KB"},
	{"crypto/x509", "trusted keys reach the init raw in the baked config; PEM and PKIX parsing stay in " +
		"slots/keys for mkinitrd and slotctl; crypto/x509 added 688 KB"},
	{"net/http", "the init has no network; net/http added 3.3 MB"},
}

// scanner matches fmt's scanning functions and its scan state: the init
// parses with strconv and its own parsers; fmt.Sscan added 53 KB.
var scanner = regexp.MustCompile(`(?m)^\s*[0-9a-f]*\s+[A-Za-z]\s+fmt\.((S|Ss|Fs)can(f|ln)?|\(\*ss\)\.[A-Za-z]+|newScanState)$`)

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// initEnv builds for the init's target: static, Linux.
func initEnv() []string { return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux") }

// TestInitDependencies fails when the init imports, directly or through
// any package, one of the forbidden packages, and names who imports it.
func TestInitDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./init")
	cmd.Dir, cmd.Env = moduleRoot(t), initEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./init: %v", err)
	}
	importers := map[string][]string{} // package -> the init's packages importing it
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			importers[imp] = append(importers[imp], f[0])
		}
	}
	if len(importers["fmt"]) == 0 {
		t.Fatalf("go list -deps ./init shows nobody importing fmt:\n%s", out)
	}
	for _, f := range forbidden {
		if by := importers[f.pkg]; len(by) > 0 {
			t.Errorf("the init links %s, imported by %s: %s", f.pkg, strings.Join(by, ", "), f.why)
		}
	}
}

// TestInitHasNoScanner builds the init as the Makefile does, but with its
// symbol table, and fails when fmt's scanner is in it: any package may
// import fmt, so only the linked symbols tell whether Sscan & co. are used.
func TestInitHasNoScanner(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "init")
	args := []string{"build"}
	for _, a := range build.Args() {
		if strings.HasPrefix(a, "-ldflags=") {
			a = "-ldflags=-buildid=" // keep the symbols
		}
		args = append(args, a)
	}
	cmd := exec.Command("go", append(args, "-o", bin, "./init")...)
	cmd.Dir, cmd.Env = moduleRoot(t), initEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./init: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	if !bytes.Contains(out, []byte(" fmt.Sprintf")) {
		t.Fatalf("go tool nm %s lists no fmt.Sprintf: the symbol table is not what this test expects", bin)
	}
	if found := scanner.FindAllString(string(out), 5); len(found) > 0 {
		t.Errorf("the init links fmt's scanner (%s): parse with strconv or the package's own parser; %s",
			strings.Join(strings.Fields(strings.Join(found, " ")), " "), scanner)
	}
}
