// SPDX-License-Identifier: Apache-2.0

package guard

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// layoutDirs are the directories README.md's layout table names: the
// backquoted paths ending in "/" in the table's first column.
func layoutDirs(readme string) []string {
	_, table, _ := strings.Cut(readme, "| directory | owns |")
	table, _, _ = strings.Cut(table, "\n\n")
	var dirs []string
	cell := regexp.MustCompile("`([a-z0-9./_-]+)/`")
	for line := range strings.Lines(table) {
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			dirs = append(dirs, m[1])
		}
	}
	return dirs
}

// TestREADMELayout: every top-level directory of the module is in
// README.md's layout table, and every directory the table names exists.
func TestREADMELayout(t *testing.T) {
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := layoutDirs(string(readme))
	if len(named) < 10 {
		t.Fatalf("README.md's layout table names %d directories: %q", len(named), named)
	}
	for _, d := range named {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("README.md's layout table names %s/, which is not a directory of the tree", d)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || name == "out" || name == "internal" || name == "testdata" {
			continue
		}
		if !slices.Contains(named, name) {
			t.Errorf("directory %s/ is missing from README.md's layout table", name)
		}
	}
	internal, _ := os.ReadDir(filepath.Join(root, "internal"))
	for _, e := range internal {
		if e.IsDir() && !slices.Contains(named, "internal/"+e.Name()) {
			t.Errorf("directory internal/%s/ is missing from README.md's layout table", e.Name())
		}
	}
}

func TestLayoutDirs(t *testing.T) {
	readme := "x\n| directory | owns |\n| --- | --- |\n| `a/` | x `not/` |\n| `b/`, `c/d/` | y |\n\n| `e/` | after the table |\n"
	if got, want := layoutDirs(readme), []string{"a", "b", "c/d"}; !slices.Equal(got, want) {
		t.Errorf("layoutDirs = %q, want %q", got, want)
	}
}
