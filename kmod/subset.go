// SPDX-License-Identifier: Apache-2.0

package kmod

import "github.com/keel-boot/keel/bakedconf"

// Closure returns the modules of the plan named in roots together with
// everything they depend on, in plan order (so still dependency-ordered).
// Names not in the plan are ignored: a filesystem built into the kernel has
// no module.
func Closure(mods []bakedconf.Module, roots ...string) []bakedconf.Module {
	byName := make(map[string]bakedconf.Module, len(mods))
	for _, m := range mods {
		byName[m.Name] = m
	}
	want := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		name = Normalize(name)
		m, ok := byName[name]
		if !ok || want[name] {
			return
		}
		want[name] = true
		for _, d := range m.Deps {
			visit(d)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	var out []bakedconf.Module
	for _, m := range mods {
		if want[m.Name] {
			out = append(out, m)
		}
	}
	return out
}

// Eager returns the modules to load at once: everything the plan's roots
// (modules nothing else depends on) need, except the roots named in lazy
// and what only they need. A dependency shared with an eager module (dm_mod
// for dm_crypt and dm_verity) stays eager.
func Eager(mods []bakedconf.Module, lazy ...string) []bakedconf.Module {
	isDep := map[string]bool{}
	for _, m := range mods {
		for _, d := range m.Deps {
			isDep[d] = true
		}
	}
	skip := map[string]bool{}
	for _, l := range lazy {
		skip[Normalize(l)] = true
	}
	var roots []string
	for _, m := range mods {
		if !isDep[m.Name] && !skip[m.Name] {
			roots = append(roots, m.Name)
		}
	}
	return Closure(mods, roots...)
}

// Pending returns the modules of mods not yet in loaded, with dependencies
// already loaded dropped from their Deps, so that the result is a complete
// plan for Load on its own.
func Pending(mods []bakedconf.Module, loaded map[string]bool) []bakedconf.Module {
	var out []bakedconf.Module
	for _, m := range mods {
		if loaded[m.Name] {
			continue
		}
		var deps []string
		for _, d := range m.Deps {
			if !loaded[d] {
				deps = append(deps, d)
			}
		}
		m.Deps = deps
		out = append(out, m)
	}
	return out
}
