// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"path"
	"strings"
)

// Kernel command line parameters that make the payload act after its report.
// They contain a dot, so the kernel keeps them out of init's argv and
// environment; the payload reads them from /proc/cmdline.
const (
	ParamWrite = "keel.test.write" // keel.test.write=/path:content writes and syncs a file
	ParamCat   = "keel.test.cat"   // keel.test.cat=/path prints a file or "missing"
)

// Action is one test action from the command line.
type Action struct {
	Param   string // ParamWrite or ParamCat
	Path    string
	Content string // for ParamWrite
}

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: on ASCII white space outside double quotes, the quotes
// removed. It works on bytes, as the kernel does: any encoding passes through.
func SplitCmdline(cmdline string) []string {
	var params []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		switch {
		case c == '"':
			inQuote, inParam = !inQuote, true
		case isSpace(c) && !inQuote:
			if inParam {
				params = append(params, cur.String())
				cur.Reset()
			}
			inParam = false
		default:
			cur.WriteByte(c)
			inParam = true
		}
	}
	if inParam {
		params = append(params, cur.String())
	}
	return params
}

// Actions returns the test actions of cmdline in order. A malformed action is
// reported in the error and left out; the others are still returned.
func Actions(cmdline string) ([]Action, []error) {
	var actions []Action
	var errs []error
	for _, p := range SplitCmdline(cmdline) {
		name, value, _ := strings.Cut(p, "=")
		a, err := parseAction(name, value)
		switch {
		case err != nil:
			errs = append(errs, err)
		case a.Param != "":
			actions = append(actions, a)
		}
	}
	return actions, errs
}

// parseAction reads one parameter; a zero Action means it is not a test action.
func parseAction(name, value string) (Action, error) {
	switch name {
	case ParamWrite:
		p, content, ok := strings.Cut(value, ":")
		if !ok {
			return Action{}, fmt.Errorf("%s=%q: want /path:content", name, value)
		}
		if err := checkPath(p); err != nil {
			return Action{}, fmt.Errorf("%s=%q: %w", name, value, err)
		}
		return Action{Param: name, Path: p, Content: content}, nil
	case ParamCat:
		if err := checkPath(value); err != nil {
			return Action{}, fmt.Errorf("%s=%q: %w", name, value, err)
		}
		return Action{Param: name, Path: value}, nil
	}
	return Action{}, nil
}

// isSpace is the kernel's isspace for ASCII.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func checkPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("path %q: want a clean absolute file path", p)
	}
	return nil
}

// WriteParam returns the command line parameter asking the payload to write
// content to path, quoted when content has spaces. Content cannot hold a
// double quote or a newline: the kernel command line has no escapes.
func WriteParam(p, content string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", fmt.Errorf("%s: %w", ParamWrite, err)
	}
	if strings.ContainsAny(p+content, "\"\n\x00") || strings.ContainsAny(p, " \t:") {
		return "", fmt.Errorf("%s %s: content %q: no double quote, newline or NUL allowed (nor space or colon in the path)", ParamWrite, p, content)
	}
	param := ParamWrite + "=" + p + ":" + content
	if strings.ContainsAny(content, " \t\v\f\r") {
		param = `"` + param + `"`
	}
	return param, nil
}

// CatParam returns the command line parameter asking the payload to print path.
func CatParam(p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", fmt.Errorf("%s: %w", ParamCat, err)
	}
	if strings.ContainsAny(p, "\" \t\n\x00") {
		return "", fmt.Errorf("%s %q: no quote, white space or NUL allowed", ParamCat, p)
	}
	return ParamCat + "=" + p, nil
}
