// SPDX-License-Identifier: Apache-2.0

package guard

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// spdxHeader is the first line of every Go file of keel (scripts/spdx.sh
// adds it): the licence is in LICENSE.
const spdxHeader = "// SPDX-License-Identifier: Apache-2.0"

// missingSPDX lists the files among paths (relative to root) whose first
// line is not spdxHeader.
func missingSPDX(root string, paths []string) ([]string, error) {
	var missing []string
	for _, p := range paths {
		f, err := os.Open(filepath.Join(root, p))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in git
		}
		if err != nil {
			return nil, err
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if strings.TrimRight(line, "\r\n") != spdxHeader {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// goFiles lists the Go files git tracks, or would track, under root.
func goFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.go")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout)", err)
	}
	return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
}

// TestSPDXHeaders fails for every Go file that does not start with the
// licence line; run scripts/spdx.sh to add it.
func TestSPDXHeaders(t *testing.T) {
	root := moduleRoot(t)
	files := goFiles(t, root)
	if len(files) < 10 {
		t.Fatalf("git lists %d Go files: %q", len(files), files)
	}
	missing, err := missingSPDX(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d Go files do not start with %q (run scripts/spdx.sh): %s", len(missing), spdxHeader, strings.Join(missing, " "))
	}
}

// TestMissingSPDX checks the check itself on files made here.
func TestMissingSPDX(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"good.go":  spdxHeader + "\n\npackage x\n",
		"crlf.go":  spdxHeader + "\r\n\r\npackage x\r\n",
		"none.go":  "package x\n",
		"late.go":  "// Package x.\n" + spdxHeader + "\npackage x\n",
		"other.go": "// SPDX-License-Identifier: MIT\n\npackage x\n",
		"empty.go": "",
	}
	var names []string
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	missing, err := missingSPDX(dir, append(names, "deleted.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"none.go": true, "late.go": true, "other.go": true, "empty.go": true}
	if len(missing) != len(want) {
		t.Errorf("missing %q, want %v", missing, want)
	}
	for _, m := range missing {
		if !want[m] {
			t.Errorf("%s reported without a header", m)
		}
	}
}
