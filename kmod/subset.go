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

// Without returns the modules of the plan that are not in drop.
func Without(mods, drop []bakedconf.Module) []bakedconf.Module {
	skip := make(map[string]bool, len(drop))
	for _, m := range drop {
		skip[m.Name] = true
	}
	var out []bakedconf.Module
	for _, m := range mods {
		if !skip[m.Name] {
			out = append(out, m)
		}
	}
	return out
}
