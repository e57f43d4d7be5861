// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
)

// TestFailureClassesDocumented: docs/boot-sequence.md lists exactly the
// table of init/classes.go, in order.
func TestFailureClassesDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/boot-sequence.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, "<!-- failure-classes:begin -->"), strings.Index(doc, "<!-- failure-classes:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/boot-sequence.md has no failure-classes table markers")
	}
	var want []string
	for _, f := range failureClasses {
		class := "environment"
		if f.class == bootstate.Image {
			class = "image"
		}
		want = append(want, "| "+f.step+" | "+class+" | "+f.what+" |")
	}
	var got []string
	for _, line := range strings.Split(doc[begin:end], "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| step |") && !strings.HasPrefix(line, "| ---") {
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docs/boot-sequence.md failure classes:\n%s\nwant (init/classes.go):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFault: every step of the table classifies as listed, and a step that
// is not in it is an environment fault.
func TestFault(t *testing.T) {
	steps := map[string]bool{}
	for _, f := range failureClasses {
		if steps[f.step] {
			t.Errorf("step %q listed twice", f.step)
		}
		steps[f.step] = true
		err := fault(f.step, errors.New("boom"))
		if got := bootstate.ClassOf(err); got != f.class || err.Error() != "boom" {
			t.Errorf("fault(%q) = %v (%v), want class %v", f.step, err, got, f.class)
		}
	}
	if got := bootstate.ClassOf(fault("no such step", errors.New("x"))); got != bootstate.Environment {
		t.Errorf("an unknown step classifies as %v", got)
	}
	if fault(stepHeader, nil) != nil {
		t.Error("fault(step, nil) is not nil")
	}
}
