// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"strings"
	"testing"
)

// FuzzIndex feeds arbitrary depmod files to the parsers and the name
// resolution: no panic, no hang on odd patterns.
func FuzzIndex(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n", "softdep a pre: c post: d\n", "alias c* b\nalias [a-\\ b\n", "a\x00b.alias=x")
	f.Add(":\n::\n", "softdep\nsoftdep x pre:\n", "alias\nalias a b c\n", "=\x00.alias=")
	f.Fuzz(func(t *testing.T, dep, soft, alias, builtinInfo string) {
		ix := &index{dir: "/fuzz", builtin: map[string]bool{}, softdeps: map[string]softdep{}}
		var err error
		if ix.deps, err = parseDeps("modules.dep", []byte(dep)); err != nil {
			return
		}
		_ = ix.parseSoftdeps([]byte(soft))
		_ = ix.aliases.parse([]byte(alias))
		_ = ix.parseBuiltinModinfo([]byte(builtinInfo))
		for _, name := range []string{"a", "c", "cx", "x", strings.TrimSpace(alias)} {
			mods, _ := ix.resolveName(name)
			for _, m := range mods {
				if _, ok := ix.deps[m]; !ok {
					t.Fatalf("resolveName(%q) returned %q, which modules.dep does not list", name, m)
				}
			}
		}
	})
}
