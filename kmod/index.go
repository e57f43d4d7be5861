// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// index is what depmod wrote about one kernel's modules.
type index struct {
	dir      string
	deps     map[string]depLine // module name → its modules.dep line
	builtin  map[string]bool    // names of built-in modules
	softdeps map[string]softdep
	aliases  aliasTable // modules.alias
	bAliases aliasTable // aliases of built-in modules, from modules.builtin.modinfo
}

type depLine struct {
	rel  string   // path relative to the modules directory
	deps []string // names of the modules it needs (depmod lists them all)
}

type softdep struct{ pre, post []string }

// readIndex parses the modules directory. modules.dep is required: without
// it nothing can be resolved. The others are optional, as depmod may not
// write them on every kernel.
func readIndex(dir string) (*index, error) {
	ix := &index{dir: dir, builtin: map[string]bool{}, softdeps: map[string]softdep{}}
	var err error
	if ix.deps, err = readDeps(dir); err != nil {
		return nil, err
	}
	steps := []struct {
		name  string
		parse func([]byte) error
	}{
		{"modules.builtin", ix.parseBuiltin},
		{"modules.softdep", ix.parseSoftdeps},
		{"modules.alias", ix.aliases.parse},
		{"modules.builtin.modinfo", ix.parseBuiltinModinfo},
	}
	for _, s := range steps {
		b, err := os.ReadFile(filepath.Join(dir, s.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := s.parse(b); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, s.name), err)
		}
	}
	return ix, nil
}

func readDeps(dir string) (map[string]depLine, error) {
	name := filepath.Join(dir, "modules.dep")
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: not found: is KVER right and are modules installed? (run depmod)", name)
	}
	if err != nil {
		return nil, err
	}
	return parseDeps(name, b)
}

// parseDeps reads "kernel/x.ko: kernel/y.ko ..." lines; name is for errors.
func parseDeps(name string, b []byte) (map[string]depLine, error) {
	deps := map[string]depLine{}
	for i, line := range lines(b) {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q, expected \"module.ko: deps...\"", name, i+1, line)
		}
		dl := depLine{rel: strings.TrimSpace(mod)}
		for _, d := range strings.Fields(rest) {
			dl.deps = append(dl.deps, NameFromPath(d))
		}
		deps[NameFromPath(dl.rel)] = dl
	}
	return deps, nil
}

func (ix *index) parseBuiltin(b []byte) error {
	for _, line := range lines(b) {
		ix.builtin[NameFromPath(line)] = true
	}
	return nil
}

// parseSoftdeps reads "softdep MOD pre: A B post: C" lines. Names before any
// "pre:" or "post:" are ignored, as kmod ignores them.
func (ix *index) parseSoftdeps(b []byte) error {
	for _, line := range lines(b) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			continue
		}
		mod := Normalize(f[1])
		sd := ix.softdeps[mod]
		var into *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				into = &sd.pre
			case "post:":
				into = &sd.post
			default:
				if into != nil {
					*into = append(*into, w)
				}
			}
		}
		ix.softdeps[mod] = sd
	}
	return nil
}

// parseBuiltinModinfo reads the NUL-separated "module.key=value" strings of
// modules.builtin.modinfo and keeps the aliases, so that a name such as
// "crypto-sha256" is known to be satisfied by the kernel itself.
func (ix *index) parseBuiltinModinfo(b []byte) error {
	for _, kv := range bytes.Split(b, []byte{0}) {
		key, val, ok := strings.Cut(string(kv), "=")
		mod, field, dotted := strings.Cut(key, ".")
		if ok && dotted && field == "alias" {
			ix.bAliases.add(val, Normalize(mod))
		}
	}
	return nil
}

// lines returns the non-empty, non-comment lines of a depmod text file.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20) // modules.dep lines can be long
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// aliasTable matches names against alias patterns. Exact aliases go to a
// map; the glob patterns (mostly device ids such as "pci:v00001AF4d*") are
// tried after a cheap check of their literal prefix.
type aliasTable struct {
	exact    map[string][]string
	globs    []aliasGlob
	byModule map[string][]string // each module's patterns, normalized, in file order
}

type aliasGlob struct {
	pattern, prefix, module string
}

// parse reads "alias PATTERN MODULE" lines.
func (t *aliasTable) parse(b []byte) error {
	for _, line := range lines(b) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			t.add(f[1], Normalize(f[2]))
		}
	}
	return nil
}

func (t *aliasTable) add(pattern, module string) {
	pattern = normalizeAlias(pattern)
	if t.byModule == nil {
		t.byModule = map[string][]string{}
	}
	t.byModule[module] = append(t.byModule[module], pattern)
	i := strings.IndexAny(pattern, "*?[")
	if i < 0 {
		if t.exact == nil {
			t.exact = map[string][]string{}
		}
		t.exact[pattern] = append(t.exact[pattern], module)
		return
	}
	t.globs = append(t.globs, aliasGlob{pattern: pattern, prefix: pattern[:i], module: module})
}

// lookup returns the modules an alias names, each once: exact aliases
// first, then glob matches in file order.
func (t *aliasTable) lookup(name string) []string {
	name = normalizeAlias(name)
	var out []string
	seen := map[string]bool{}
	addOnce := func(m string) {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	for _, m := range t.exact[name] {
		addOnce(m)
	}
	for _, g := range t.globs {
		if !strings.HasPrefix(name, g.prefix) {
			continue
		}
		// A malformed pattern matches nothing, as in fnmatch.
		if ok, err := path.Match(g.pattern, name); err == nil && ok {
			addOnce(g.module)
		}
	}
	return out
}
