// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testShell is a shell on buffers in a fresh working directory.
func testShell(t *testing.T) (*Shell, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	var out, errb bytes.Buffer
	s := &Shell{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		vars: map[string]string{"PATH": "/usr/bin:/bin", "HOME": dir}, builtins: builtins()}
	return s, &out, &errb
}

func TestRunOutput(t *testing.T) {
	tests := []struct {
		line, want string
		status     int
	}{
		{"echo hello world", "hello world\n", 0},
		{"echo -n a; echo b", "ab\n", 0},
		{"echo 'single $X' \"double $X\" $X", "single $X double 42 42\n", 0},
		{"echo a\\ b \\$X", "a b $X\n", 0},
		{"echo shell-$((6*7))", "shell-42\n", 0},
		{"echo $((1 + 2 * 3)) $(( (1+2)*3 )) $((-7 / 2)) $((7 % 3)) $((X - 2))", "7 9 -3 1 40\n", 0},
		{"echo ${X}x $Xx end", "42x end\n", 0},
		{"false; echo $?", "1\n", 0},
		{"true && echo yes || echo no", "yes\n", 0},
		{"false && echo yes || echo no", "no\n", 0},
		{"false || false && echo never", "", 1},
		{"echo one | grep -c one", "1\n", 0},
		{"echo a; echo b; echo c | grep b", "a\nb\n", 1},
		{"printf_missing_cmd_xyz", "", 127},
		{"Y='a   b'; echo $Y; echo \"$Y\"", "a b\na   b\n", 0},
		{"echo \"\" x | grep -c ' x'", "1\n", 0},
		{"echo a # comment", "a\n", 0},
		{"echo a &&\n echo b", "a\nb\n", 0},
		{"echo $UNSET_VAR_XYZ | grep -c .", "0\n", 1},
		{"echo '*' \"*\"", "* *\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s, out, errb := testShell(t)
			s.Set("X", "42")
			status := s.Run(tt.line)
			if out.String() != tt.want || status != tt.status {
				t.Errorf("%q: output %q status %d, want %q status %d (stderr %q)", tt.line, out.String(), status, tt.want, tt.status, errb.String())
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	for line, want := range map[string]string{
		"echo 'open":           "unterminated '",
		"echo \"open":          "unterminated \"",
		"echo a |":             "| at the end",
		"echo a &&":            "&& at the end",
		"echo a & b":           "background jobs",
		"; echo":               "expected a command before ';'",
		"echo $(ls)":           "command substitution",
		"echo $((1+2)":         "$(( needs a matching ))",
		"echo >":               "> needs a file name",
		"echo ${1bad}":         "bad parameter name",
		"echo 2>&3":            ">& needs 1 or 2",
		"echo a \\":            "\\ at the end",
		"echo $((1/0))":        "division by zero",
		"echo $((1+))":         "expected a number",
		"echo $((2 3))":        "unexpected '3'",
		"X=abc; echo $((X+1))": `X is "abc", expected an integer`,
	} {
		s, _, errb := testShell(t)
		if st := s.Run(line); st == 0 || !strings.Contains(errb.String(), want) {
			t.Errorf("%q: status %d, stderr %q, want %q", line, st, errb.String(), want)
		}
	}
	if _, err := Parse("echo 'a"); !errors.Is(err, ErrIncomplete) {
		t.Errorf("unterminated quote: %v, want ErrIncomplete", err)
	}
	if _, err := Parse("echo a ;; b"); err == nil || errors.Is(err, ErrIncomplete) {
		t.Errorf(";; : %v, want a syntax error", err)
	}
}

func TestArithmeticEdges(t *testing.T) {
	s, _, _ := testShell(t)
	for expr, want := range map[string]int64{
		"-9223372036854775807 - 1":        -9223372036854775808,
		"(-9223372036854775807 - 1) / -1": -9223372036854775808,
		"5 % -1":                          -5,
		"--3":                             3,
		"((((1))))":                       1,
	} {
		if got, err := s.arith(expr); err != nil || got != want {
			t.Errorf("$((%s)) = %d, %v; want %d", expr, got, err, want)
		}
	}
	if _, err := s.arith(strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500)); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestAssignments(t *testing.T) {
	s, out, _ := testShell(t)
	s.Run("A=1 B=\"two words\"; echo $A $B")
	if out.String() != "1 two words\n" {
		t.Errorf("got %q", out.String())
	}
	out.Reset()
	// An assignment before a program is its environment only.
	s.Run("C=only-env env > e; grep -c C=only-env e; echo x${C}x")
	if out.String() != "1\nxx\n" {
		t.Errorf("prefix assignment: got %q", out.String())
	}
	out.Reset()
	s.Run("export D=exported; unset A; env | grep -c D=exported; echo x${A}x")
	if out.String() != "1\nxx\n" {
		t.Errorf("export/unset: got %q", out.String())
	}
}

func TestRedirections(t *testing.T) {
	s, out, errb := testShell(t)
	if st := s.Run("echo first > f; echo second >> f; cat < f"); st != 0 || out.String() != "first\nsecond\n" {
		t.Fatalf("status %d output %q stderr %q", st, out.String(), errb.String())
	}
	out.Reset()
	s.Run("cat missing-file 2> err; grep -c missing-file err")
	if out.String() != "1\n" {
		t.Errorf("2>: got %q", out.String())
	}
	out.Reset()
	errb.Reset()
	s.Run("cat missing-file 2>&1 | grep -c 'no such file'")
	if out.String() != "1\n" || errb.Len() != 0 {
		t.Errorf("2>&1 through a pipe: got %q, stderr %q", out.String(), errb.String())
	}
	errb.Reset()
	if st := s.Run("echo x > /nonexistent-dir/f"); st == 0 || !strings.Contains(errb.String(), "/nonexistent-dir/f") {
		t.Errorf("bad redirection: status %d stderr %q", st, errb.String())
	}
}

func TestGlobs(t *testing.T) {
	s, out, _ := testShell(t)
	s.Run("mkdir d; echo > d/b.txt; echo > d/a.txt; echo > d/c.log")
	s.Run("echo d/*.txt; echo d/*.none; echo 'd/*.txt'")
	if out.String() != "d/a.txt d/b.txt\nd/*.none\nd/*.txt\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestPipelineStateBuiltins(t *testing.T) {
	s, _, errb := testShell(t)
	if st := s.Run("echo x | exit 3"); st == 0 || s.Exited() || !strings.Contains(errb.String(), "exit: has no effect in a pipeline") {
		t.Errorf("exit in a pipeline: status %d exited %v stderr %q", st, s.Exited(), errb.String())
	}
	if st := s.Run("exit 7; echo not-reached"); st != 7 || !s.Exited() {
		t.Errorf("exit 7: status %d exited %v", st, s.Exited())
	}
}

func TestInteractive(t *testing.T) {
	s, out, errb := testShell(t)
	s.Stdin = strings.NewReader("echo one\necho 'two\nlines'\necho a |\ngrep a\nbad 'x\n")
	st := s.Interactive("P$ ")
	want := "P$ one\nP$ > two\nlines\nP$ > a\nP$ > \n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if !strings.Contains(errb.String(), "end of input inside an incomplete command") || st != 0 {
		t.Errorf("status %d stderr %q", st, errb.String())
	}
	s, out, _ = testShell(t)
	s.Stdin = strings.NewReader("echo before\nexit 4\necho after\n")
	if st := s.Interactive("$ "); st != 4 || strings.Contains(out.String(), "after") {
		t.Errorf("exit: status %d output %q", st, out.String())
	}
}

func TestExternalPrograms(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh on this host")
	}
	s, out, errb := testShell(t)
	s.Set("GREETING", "hi")
	st := s.Run("/bin/sh -c 'echo $GREETING from-child; exit 3'")
	if st != 3 || out.String() != "hi from-child\n" {
		t.Errorf("status %d output %q stderr %q", st, out.String(), errb.String())
	}
	out.Reset()
	// Built-in to program to built-in, through pipes.
	if st := s.Run("echo piped | sh -c 'cat; echo more' | grep -c e"); st != 0 || out.String() != "2\n" {
		t.Errorf("pipeline with a program: status %d output %q stderr %q", st, out.String(), errb.String())
	}
	errb.Reset()
	if st := s.Run("no-such-program-xyz"); st != 127 || !strings.Contains(errb.String(), "no-such-program-xyz: not found") {
		t.Errorf("missing program: status %d stderr %q", st, errb.String())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "noexec"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if st := s.Run(filepath.Join(dir, "noexec")); st != 126 || !strings.Contains(errb.String(), "permission denied") {
		t.Errorf("non-executable: status %d stderr %q", st, errb.String())
	}
}

func TestPanickingBuiltinDoesNotEndTheShell(t *testing.T) {
	s, out, errb := testShell(t)
	s.builtins["boom"] = builtin{run: func(*Shell, []string, stdio) int { panic("kaboom") }, usage: "boom"}
	if st := s.Run("boom; echo still-here"); st != 0 || out.String() != "still-here\n" || !strings.Contains(errb.String(), "sh: internal error: kaboom") {
		t.Errorf("status %d output %q stderr %q", st, out.String(), errb.String())
	}
	errb.Reset()
	if st := s.Run("echo x | boom"); st != 70 || !strings.Contains(errb.String(), "kaboom") {
		t.Errorf("in a pipeline: status %d stderr %q", st, errb.String())
	}
}
