// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keel-boot/keel/bakedconf"
)

// Module is one module of a plan.
type Module struct {
	Name   string   // kernel spelling, e.g. "dm_crypt"
	Source string   // file on the build host, possibly .ko.xz/.ko.zst/.ko.gz
	Path   string   // inside the initramfs: the uncompressed .ko
	Deps   []string // modules of the plan that must be loaded first
	// Aliases are the module's device aliases when they are all on buses
	// the init reads the devices of (DeviceAliases); nil otherwise.
	Aliases []string
}

// Plan is the resolved set of modules, each after the modules it needs.
type Plan struct {
	Kver    string
	ModDir  string
	Modules []Module
	Builtin []string // requested names the kernel provides itself
	Skipped []string // optional requests this kernel does not have
	Notes   []string // soft dependencies not found or cycles broken, for -v
}

// Request names the modules wanted: Required ones must exist (or be built
// in); Optional ones are skipped when this kernel does not have them.
type Request struct {
	Required []string
	Optional []string
}

// Resolve plans the loading of want and everything it needs from the
// depmod output in modDir (SYSROOT/lib/modules/KVER). Names may be module
// names in either spelling ("dm-verity", "dm_verity") or aliases
// ("crypto-crc32c", "fs-btrfs").
func Resolve(modDir string, want []string) (*Plan, error) {
	return ResolveRequest(modDir, Request{Required: want})
}

// ResolveRequest is Resolve with optional modules.
func ResolveRequest(modDir string, req Request) (*Plan, error) {
	ix, err := readIndex(modDir)
	if err != nil {
		return nil, err
	}
	r := &resolver{ix: ix, state: map[string]visitState{},
		plan: &Plan{Kver: filepath.Base(modDir), ModDir: modDir}}
	for _, name := range req.Required {
		if err := r.want(name, true); err != nil {
			return nil, err
		}
	}
	for _, name := range req.Optional {
		if err := r.want(name, false); err != nil {
			return nil, err
		}
	}
	return r.plan, nil
}

// Baked returns the plan in the form the init reads.
func (p *Plan) Baked() []bakedconf.Module {
	out := make([]bakedconf.Module, 0, len(p.Modules))
	for _, m := range p.Modules {
		out = append(out, bakedconf.Module{Name: m.Name, Path: m.Path, Deps: m.Deps, Aliases: m.Aliases})
	}
	return out
}

type visitState int

const (
	unvisited visitState = iota
	visiting
	done
)

type resolver struct {
	ix    *index
	plan  *Plan
	state map[string]visitState
}

// want adds one requested name.
func (r *resolver) want(name string, required bool) error {
	mods, builtin := r.ix.resolveName(name)
	switch {
	case len(mods) == 0 && builtin:
		r.plan.Builtin = appendOnce(r.plan.Builtin, name)
		return nil
	case len(mods) == 0 && required:
		return fmt.Errorf("module %q: not found in %s (not in modules.dep, modules.alias or modules.builtin)", name, r.ix.dir)
	case len(mods) == 0:
		r.plan.Skipped = appendOnce(r.plan.Skipped, name)
		return nil
	}
	for _, m := range mods {
		if _, err := r.visit(m); err != nil {
			return err
		}
	}
	return nil
}

// visit adds name after its dependencies. It reports false when name is
// still being visited: a dependency cycle, whose closing edge is dropped so
// the plan stays loadable.
func (r *resolver) visit(name string) (bool, error) {
	switch r.state[name] {
	case done:
		return true, nil
	case visiting:
		return false, nil
	}
	r.state[name] = visiting
	dl := r.ix.deps[name]
	src := filepath.Join(r.ix.dir, dl.rel)
	if _, err := os.Stat(src); err != nil {
		return false, fmt.Errorf("module %s: listed in %s/modules.dep but missing: %w", name, r.ix.dir, err)
	}
	deps, err := r.hardDeps(name, dl)
	if err != nil {
		return false, err
	}
	pre, err := r.softDeps(name, r.ix.softdeps[name].pre)
	if err != nil {
		return false, err
	}
	accel, err := r.accelerations(name)
	if err != nil {
		return false, err
	}
	r.plan.Modules = append(r.plan.Modules, Module{
		Name: name, Source: src, Deps: appendOnce(appendOnce(deps, pre...), accel...),
		Path:    "/lib/modules/" + r.plan.Kver + "/" + StripCompression(dl.rel),
		Aliases: DeviceAliases(r.ix.aliases.byModule[name]),
	})
	r.state[name] = done
	return true, r.after(name)
}

func (r *resolver) hardDeps(name string, dl depLine) ([]string, error) {
	var deps []string
	for _, d := range dl.deps {
		if _, ok := r.ix.deps[d]; !ok {
			return nil, fmt.Errorf("module %s: needs %s, which %s/modules.dep does not list", name, d, r.ix.dir)
		}
		ok, err := r.visit(d)
		if err != nil {
			return nil, err
		}
		if !ok {
			r.note("dependency cycle: %s needs %s, which needs it back; edge dropped", name, d)
			continue
		}
		deps = append(deps, d)
	}
	return deps, nil
}

// softDeps adds the "pre:" soft dependencies of name and returns the ones
// name must wait for. An alias such as "crypto-crc32c" may match several
// modules (crc32c_intel, crc32c_generic): all are loaded, as modprobe would,
// but name waits only for one, preferring the generic implementation, and
// for none when the kernel has one built in, so that a CPU-specific module
// failing with ENODEV cannot take name down with it.
func (r *resolver) softDeps(name string, soft []string) ([]string, error) {
	var deps []string
	for _, s := range soft {
		mods, builtin := r.ix.resolveName(s)
		if len(mods) == 0 {
			if !builtin {
				r.note("module %s: soft dependency %q not found, skipped", name, s)
			}
			continue
		}
		// With a built-in implementation nothing needs waiting for:
		// the modules only add faster variants.
		waitFor := ""
		if !builtin {
			waitFor = preferGeneric(mods)
		}
		for _, m := range mods {
			ok, err := r.visit(m)
			if err != nil {
				return nil, err
			}
			if m != waitFor {
				continue
			}
			if !ok {
				r.note("dependency cycle: %s wants %s first, which needs it back; edge dropped", name, m)
				continue
			}
			deps = append(deps, m)
		}
	}
	return deps, nil
}

// after adds what name wants loaded after it: "post:" soft dependencies and
// the crypto it will ask for at run time. Nothing waits for them.
func (r *resolver) after(name string) error {
	for _, s := range append(r.ix.softdeps[name].post, runtimeNeeds(name)...) {
		mods, builtin := r.ix.resolveName(s)
		if builtin {
			continue // the kernel has an implementation already
		}
		if len(mods) == 0 {
			r.note("module %s: wants %q, not found, skipped", name, s)
		}
		for _, m := range mods {
			if _, err := r.visit(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// accelerations returns the CPU-specific implementations (IsCPUCrypto) of
// the crypto name asks for at run time (runtimeNeeds) when the kernel has a
// generic one built in: aesni_intel for dm-crypt's "aes", sha256_ssse3 for
// dm-verity's "sha256". They are visited first and name waits for them,
// because the device mapper picks its implementation once, when a table is
// loaded, and keeps it for the life of the device: without them a LUKS data
// partition ran AES in C and dm-verity hashed in C on every read, for the
// whole boot, where the CPU has instructions several times as fast
// (docs/initramfs.md, "The module load plan"). Hardware crypto drivers the
// same aliases match (padlock_aes, for VIA CPUs) are left out: they drive a
// device, not an instruction set. A CPU without the instructions fails
// their load with ENODEV, which Load does not count as a failure, nor any
// failure of theirs as one of name's (Accelerates). Without a built-in
// implementation, after adds every match, not waited for, as before.
func (r *resolver) accelerations(name string) ([]string, error) {
	var out []string
	for _, s := range runtimeNeeds(name) {
		mods, builtin := r.ix.resolveName(s)
		if !builtin {
			continue
		}
		for _, m := range mods {
			if !IsCPUCrypto(r.ix.deps[m].rel) {
				continue
			}
			ok, err := r.visit(m)
			if err != nil {
				return nil, err
			}
			if ok {
				out = appendOnce(out, m)
			}
		}
	}
	return out, nil
}

// IsCPUCrypto reports whether a module path (relative to the module
// directory, or a path inside the initramfs) is a CPU-specific crypto
// implementation: kernel/arch/<arch>/crypto/, such as aesni-intel,
// sha256-ssse3, crc32c-intel: code for one CPU's instructions, which the
// kernel refuses with ENODEV on a CPU without them.
func IsCPUCrypto(path string) bool {
	i := strings.Index(path, "kernel/arch/")
	return i >= 0 && (i == 0 || path[i-1] == '/') && strings.Contains(path[i:], "/crypto/")
}

// runtimeNeeds lists the crypto a module asks the kernel for by algorithm
// name only when it is used (dm-crypt allocates "xts(aes)" when a table is
// loaded), so neither modules.dep nor a softdep records it. The kernel would
// call modprobe for them, and the initramfs has no modprobe.
func runtimeNeeds(module string) []string {
	switch module {
	case "dm_crypt":
		return []string{"crypto-xts", "crypto-ecb", "crypto-cbc", "crypto-aes", "crypto-sha256"}
	case "dm_verity":
		return []string{"crypto-sha256"}
	}
	return nil
}

func (r *resolver) note(format string, args ...any) {
	r.plan.Notes = appendOnce(r.plan.Notes, fmt.Sprintf(format, args...))
}

// resolveName finds the modules a name stands for: a module of modules.dep,
// then the aliases of modules.alias. builtin reports that the kernel itself
// provides the name, directly or through an alias.
func (ix *index) resolveName(name string) (mods []string, builtin bool) {
	n := Normalize(name)
	if _, ok := ix.deps[n]; ok {
		return []string{n}, false
	}
	if ix.builtin[n] {
		return nil, true
	}
	for _, m := range ix.aliases.lookup(name) {
		if _, ok := ix.deps[m]; ok {
			mods = append(mods, m)
		} else if ix.builtin[m] {
			builtin = true
		}
	}
	if len(ix.bAliases.lookup(name)) > 0 {
		builtin = true // modules.builtin.modinfo describes built-in modules only
	}
	return mods, builtin
}

// preferGeneric picks the module to wait for among those an alias matches.
func preferGeneric(mods []string) string {
	for _, m := range mods {
		if strings.HasSuffix(m, "_generic") {
			return m
		}
	}
	return mods[0]
}

func appendOnce(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, have := range list {
			dup = dup || have == it
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}
