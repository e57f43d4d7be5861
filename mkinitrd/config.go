// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// defaultConfig is the build options file the Debian package installs
// (docs/integration.md). mkinitrd reads it when it builds for the running
// system (--sysroot /) and neither --config nor --no-config says otherwise.
const defaultConfig = "/etc/keel/mkinitrd.conf"

// perBuildKeys are flags that describe one invocation, not the system: the
// config file may not set them.
var perBuildKeys = map[string]bool{"config": true, "no-config": true, "out": true, "kver": true, "sysroot": true}

// configEntry is one KEY=VALUE line of a config file.
type configEntry struct {
	key, value string
	line       int
}

// parseConfig reads the KEY=VALUE lines of a config file; name is used in
// errors. Blank lines and lines starting with # are skipped; whitespace
// around keys and values is dropped, and one pair of matching quotes ("…"
// or '…') around a value is removed. It knows nothing of which keys exist.
func parseConfig(name string, b []byte) ([]configEntry, error) {
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("%s: expected a text file of KEY=VALUE lines, found binary data", name)
	}
	var entries []configEntry
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseConfigLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, i+1, err)
		}
		e.line = i + 1
		entries = append(entries, e)
	}
	return entries, nil
}

func parseConfigLine(line string) (configEntry, error) {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return configEntry{}, fmt.Errorf("%q: expected KEY=VALUE (a # comment starts a line)", line)
	}
	key, value = strings.TrimSpace(key), unquote(strings.TrimSpace(value))
	if !validKey(key) {
		return configEntry{}, fmt.Errorf("key %q: expected an option name of mkinitrd like trust or cmdline (lower-case letters, digits and -)", key)
	}
	if value == "" {
		return configEntry{}, fmt.Errorf("%s has no value: expected %s=VALUE (comment the line out for the default)", key, key)
	}
	return configEntry{key: key, value: value}, nil
}

func validKey(k string) bool {
	if k == "" || k[0] == '-' {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// applyConfig sets the flags of fs the entries name, as if given on the
// command line, except those the command line set (cmdline): the command
// line overrides the file, a list flag such as trust included. A key may
// repeat only for a repeatable flag. name is the file, for errors.
func applyConfig(fs *flag.FlagSet, name string, entries []configEntry, cmdline map[string]bool) error {
	first := map[string]int{}
	for _, e := range entries {
		f := fs.Lookup(e.key)
		switch {
		case perBuildKeys[e.key]:
			return fmt.Errorf("%s:%d: %s: expected only on the command line (--%s), it is per build", name, e.line, e.key, e.key)
		case f == nil:
			return fmt.Errorf("%s:%d: unknown key %q: expected one of %s", name, e.line, e.key, strings.Join(configKeys(fs), ", "))
		}
		if l, seen := first[e.key]; seen && !repeatable(f) {
			return fmt.Errorf("%s:%d: %s set again (first on line %d): expected it once", name, e.line, e.key, l)
		}
		first[e.key] = e.line
		if cmdline[e.key] {
			continue
		}
		if err := fs.Set(e.key, boolWord(f, e.value)); err != nil {
			return fmt.Errorf("%s:%d: %s=%s: %v", name, e.line, e.key, e.value, err)
		}
	}
	return nil
}

// configKeys lists the keys a config file may set.
func configKeys(fs *flag.FlagSet) []string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) {
		if !perBuildKeys[f.Name] {
			keys = append(keys, f.Name)
		}
	})
	sort.Strings(keys)
	return keys
}

func repeatable(f *flag.Flag) bool {
	_, ok := f.Value.(listFlag)
	return ok
}

// boolWord lets a boolean key also say yes/no and on/off.
func boolWord(f *flag.Flag, v string) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
		return v
	}
	switch strings.ToLower(v) {
	case "yes", "on":
		return "true"
	case "no", "off":
		return "false"
	}
	return v
}

// readConfig applies the config file to fs after the command line was
// parsed into it: --no-config or an empty --config reads none; --config PATH
// must exist; otherwise defaultConfig is read if it exists and the build is
// for this system (--sysroot /).
func readConfig(fs *flag.FlagSet) error {
	cmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })
	path, required := configPath(fs, cmdline)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config file: %w (--no-config builds without one)", err)
	}
	entries, err := parseConfig(path, b)
	if err != nil {
		return err
	}
	return applyConfig(fs, path, entries, cmdline)
}

// configPath says which file to read, and whether it must exist.
func configPath(fs *flag.FlagSet, cmdline map[string]bool) (string, bool) {
	if fs.Lookup("no-config").Value.String() == "true" {
		return "", false
	}
	if cmdline["config"] {
		p := fs.Lookup("config").Value.String()
		return p, p != ""
	}
	if filepath.Clean(fs.Lookup("sysroot").Value.String()) != "/" {
		return "", false
	}
	return defaultConfig, false
}
