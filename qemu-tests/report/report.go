// SPDX-License-Identifier: Apache-2.0

// Package report defines the console lines that the test payload (the tiny
// init inside test root images) prints, and parses them back for assertions.
//
// The format lives here once: the payload writes it, package vm reads it. Each
// line is Prefix followed by a key, ": " and a value; a few keys take no value.
package report

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Prefix starts every line the payload prints.
const Prefix = "KEEL-PAYLOAD: "

// Keys of the payload's lines, in the order it prints them.
const (
	KeyStart        = "start"
	KeyPID          = "pid"
	KeyArgv         = "argv"
	KeyEnviron      = "environ"
	KeyCmdline      = "cmdline"
	KeyMounts       = "mounts"
	KeyMount        = "mount"
	KeyBootJSON     = "boot.json"
	KeyRootWritable = "root-writable"
	KeyMarker       = "marker"
	KeyWrite        = "write"
	KeyCat          = "cat"
	KeyError        = "error"
	KeyDone         = "done"
)

// Missing is the value printed for a file that does not exist.
const Missing = "missing"

// Line formats one payload line: Prefix, key and, when value is not empty, ": value".
func Line(key, value string) string {
	if value == "" {
		return Prefix + key
	}
	return Prefix + key + ": " + value
}

// Report is what one run of the payload printed between start and done.
type Report struct {
	PID          int
	Argv         []string
	Environ      []string
	Cmdline      string
	Mounts       []Mount
	BootJSON     json.RawMessage // nil when /run/keel/boot.json was missing
	RootWritable bool
	Marker       *string  // content of /etc/keel-test-marker; nil when missing
	Writes       []Result // keel.test.write actions, in command line order
	Cats         []Result // keel.test.cat actions, in command line order
	Errors       []string // anything the payload reported as an error
	Done         bool     // the payload reached its last line
}

// Result is the outcome of one test action on Path. For a cat, Content holds
// the file and Missing tells an absent file; for a write, Err is empty on success.
type Result struct {
	Path    string
	Content string
	Missing bool
	Err     string
}

// Mount is one line of /proc/mounts.
type Mount struct {
	Source, Target, FSType, Options string
}

// Mount returns the last mount on target (the one visible there), if any.
func (r *Report) Mount(target string) (Mount, bool) {
	for i := len(r.Mounts) - 1; i >= 0; i-- {
		if r.Mounts[i].Target == target {
			return r.Mounts[i], true
		}
	}
	return Mount{}, false
}

// Cat returns the result of the last keel.test.cat of path.
func (r *Report) Cat(path string) (Result, bool) {
	for i := len(r.Cats) - 1; i >= 0; i-- {
		if r.Cats[i].Path == path {
			return r.Cats[i], true
		}
	}
	return Result{}, false
}

// ParseMount splits one /proc/mounts line; the fields are octal-escaped there
// (a space is \040), which this keeps as is.
func ParseMount(line string) (Mount, error) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return Mount{}, fmt.Errorf("mount line %q: want at least 4 fields, got %d", line, len(f))
	}
	return Mount{Source: f[0], Target: f[1], FSType: f[2], Options: f[3]}, nil
}

// Parse reads a report from console lines. Lines without Prefix (kernel
// messages interleaved with the payload's) are ignored. A later start line
// discards everything before it, so the lines of a whole console log can be
// passed and the last run is returned.
func Parse(lines []string) (Report, error) {
	var r Report
	started := false
	for _, line := range lines {
		i := strings.Index(line, Prefix)
		if i < 0 {
			continue
		}
		key, value, _ := strings.Cut(line[i+len(Prefix):], ": ")
		if key == KeyStart {
			r, started = Report{}, true
			continue
		}
		if !started {
			continue
		}
		if err := r.add(key, value); err != nil {
			return r, fmt.Errorf("payload line %q: %w", line, err)
		}
	}
	if !started {
		return r, fmt.Errorf("no %q line in %d console lines", Line(KeyStart, ""), len(lines))
	}
	return r, nil
}

// add folds one line's key and value into r.
func (r *Report) add(key, value string) error {
	var err error
	switch key {
	case KeyPID:
		r.PID, err = strconv.Atoi(value)
	case KeyArgv:
		err = json.Unmarshal([]byte(value), &r.Argv)
	case KeyEnviron:
		err = json.Unmarshal([]byte(value), &r.Environ)
	case KeyCmdline:
		r.Cmdline = value
	case KeyMounts:
	case KeyMount:
		var m Mount
		m, err = ParseMount(value)
		r.Mounts = append(r.Mounts, m)
	case KeyBootJSON:
		err = r.addBootJSON(value)
	case KeyRootWritable:
		r.RootWritable = strings.HasPrefix(value, "yes")
	case KeyMarker:
		r.Marker, err = unquoteFile(value)
	case KeyWrite:
		r.Writes = append(r.Writes, parseWrite(value))
	case KeyCat:
		var res Result
		res, err = parseCat(value)
		r.Cats = append(r.Cats, res)
	case KeyError:
		r.Errors = append(r.Errors, value)
	case KeyDone:
		r.Done = true
	}
	return err
}

func (r *Report) addBootJSON(value string) error {
	if value == Missing {
		return nil
	}
	if !json.Valid([]byte(value)) {
		return fmt.Errorf("boot.json is not valid JSON: %.80q", value)
	}
	r.BootJSON = json.RawMessage(value)
	return nil
}

// QuoteFile formats a file's content for a marker or cat line: Missing when
// absent, else a Go-quoted string, so any bytes stay on one line and come
// back exactly.
func QuoteFile(content []byte, missing bool) string {
	if missing {
		return Missing
	}
	return strconv.Quote(string(content))
}

// unquoteFile reverses QuoteFile: nil for Missing.
func unquoteFile(value string) (*string, error) {
	if value == Missing {
		return nil, nil
	}
	s, err := strconv.Unquote(value)
	if err != nil || !strings.HasPrefix(value, `"`) {
		return nil, fmt.Errorf("file content %.80q is neither %q nor a quoted string", value, Missing)
	}
	return &s, nil
}

// parseWrite reads "PATH: ok" or "PATH: error: MESSAGE".
func parseWrite(value string) Result {
	path, rest, _ := strings.Cut(value, ": ")
	res := Result{Path: path}
	if rest != "ok" {
		res.Err = strings.TrimPrefix(rest, KeyError+": ")
	}
	return res
}

// parseCat reads "PATH: missing" or "PATH: QUOTED-STRING".
func parseCat(value string) (Result, error) {
	path, rest, _ := strings.Cut(value, ": ")
	content, err := unquoteFile(rest)
	if err != nil {
		return Result{Path: path}, fmt.Errorf("cat %s: %w", path, err)
	}
	if content == nil {
		return Result{Path: path, Missing: true}, nil
	}
	return Result{Path: path, Content: *content}, nil
}
