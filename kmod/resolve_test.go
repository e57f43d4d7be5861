// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTree writes a small depmod output and the module files it lists.
func fakeTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-test")
	files := map[string]string{
		"modules.dep": `kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko kernel/crypto/xor.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/xor.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-verity.ko.zst: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-crypt.ko.xz: kernel/drivers/md/dm-mod.ko
kernel/crypto/xts.ko:
kernel/crypto/ecb.ko:
kernel/drivers/block/virtio_blk.ko.gz: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/test/cyc-a.ko:
kernel/test/cyc-b.ko:
kernel/test/post-user.ko:
kernel/test/post-helper.ko:
kernel/arch/x86/crypto/sha256-ssse3.ko:
kernel/arch/x86/crypto/aesni-intel.ko: kernel/crypto/cryptd.ko
kernel/crypto/cryptd.ko:
kernel/drivers/crypto/padlock-aes.ko:
`,
		"modules.softdep": `# Soft dependencies extracted from modules themselves.
softdep btrfs pre: crypto-crc32c
softdep btrfs pre: no-such-thing
softdep libcrc32c pre: crc32c
softdep cyc_a pre: cyc-b
softdep cyc_b pre: cyc_a
softdep post-user post: post_helper
softdep cifs gcm
`,
		"modules.alias": `# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-btrfs btrfs
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
alias virtio:d00000002v* virtio_blk
alias block-major-254-* virtio_blk
alias devname:vda virtio_blk
alias acpi*:PNP0A05:* dm_verity
alias pci:v*d*sv*sd*bc01sc08i02* dm_verity
alias crypto-xts xts
alias crypto-ecb ecb
alias crypto-aes aes_generic
alias crypto-aes aesni_intel
alias crypto-aes padlock_aes
alias crypto-sha256 sha256_ssse3
`,
		"modules.builtin":         "kernel/crypto/aes_generic.ko\nkernel/crypto/sha256_generic.ko\n",
		"modules.builtin.modinfo": "sha256_generic.alias=crypto-sha256\x00sha256_generic.license=GPL\x00aes_generic.alias=crypto-aes\x00",
	}
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	for _, line := range strings.Split(files["modules.dep"], "\n") {
		if rel, _, ok := strings.Cut(line, ":"); ok {
			writeFile(t, filepath.Join(dir, rel), "ko")
		}
	}
	return dir
}

func writeFile(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(p *Plan) []string {
	var out []string
	for _, m := range p.Modules {
		out = append(out, m.Name)
	}
	return out
}

// checkOrder asserts the invariants of every plan: each module once, after
// its deps, which are in the plan.
func checkOrder(t *testing.T, p *Plan) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range p.Modules {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("%s appears twice", m.Name)
		}
		pos[m.Name] = i
		for _, d := range m.Deps {
			if j, ok := pos[d]; !ok || j >= i {
				t.Errorf("%s depends on %s, which does not come before it: %v", m.Name, d, names(p))
			}
		}
	}
}

func TestResolve(t *testing.T) {
	dir := fakeTree(t)
	tests := []struct {
		name     string
		want     []string
		modules  []string // exact plan order
		deps     map[string][]string
		builtin  []string
		noteSubs string
	}{
		{
			// sha256 is built in; dm-verity waits for the CPU's
			// faster one, which it picks when its table is loaded.
			name: "hard deps, CPU crypto", want: []string{"dm-verity"},
			modules: []string{"dm_mod", "sha256_ssse3", "dm_verity"},
			deps:    map[string][]string{"dm_verity": {"dm_mod", "sha256_ssse3"}},
		},
		{
			name: "alias, softdeps through aliases", want: []string{"fs-btrfs"},
			modules: []string{"crc32c_intel", "crc32c_generic", "libcrc32c", "xor", "btrfs"},
			deps: map[string][]string{
				"libcrc32c": {"crc32c_generic"},
				"btrfs":     {"libcrc32c", "xor", "crc32c_generic"},
			},
			noteSubs: `soft dependency "no-such-thing" not found`,
		},
		{
			name: "glob alias", want: []string{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"},
			modules: []string{"virtio", "virtio_blk"},
			deps:    map[string][]string{"virtio_blk": {"virtio"}},
		},
		{
			// aes is built in: aesni_intel (not the VIA driver
			// padlock_aes) is waited for; xts and ecb, modules
			// only, load after it.
			name: "dash and underscore, runtime crypto", want: []string{"dm-crypt", "dm_crypt"},
			modules:  []string{"dm_mod", "cryptd", "aesni_intel", "sha256_ssse3", "dm_crypt", "xts", "ecb"},
			deps:     map[string][]string{"dm_crypt": {"dm_mod", "aesni_intel", "sha256_ssse3"}, "aesni_intel": {"cryptd"}},
			noteSubs: `wants "crypto-cbc", not found`,
		},
		{
			name: "builtin", want: []string{"aes_generic", "sha256-generic"},
			builtin: []string{"aes_generic", "sha256-generic"},
		},
		{
			name: "cycle", want: []string{"cyc_a"},
			modules:  []string{"cyc_b", "cyc_a"},
			deps:     map[string][]string{"cyc_a": {"cyc_b"}},
			noteSubs: "dependency cycle",
		},
		{
			name: "post softdep", want: []string{"post_user"},
			modules: []string{"post_user", "post_helper"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Resolve(dir, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			checkOrder(t, p)
			if got := names(p); !slices.Equal(got, tt.modules) {
				t.Errorf("modules %v, want %v", got, tt.modules)
			}
			for _, m := range p.Modules {
				if want := tt.deps[m.Name]; !slices.Equal(m.Deps, want) {
					t.Errorf("%s deps %v, want %v", m.Name, m.Deps, want)
				}
			}
			if !slices.Equal(p.Builtin, tt.builtin) {
				t.Errorf("builtin %v, want %v", p.Builtin, tt.builtin)
			}
			if notes := strings.Join(p.Notes, "\n"); !strings.Contains(notes, tt.noteSubs) {
				t.Errorf("notes %q lack %q", notes, tt.noteSubs)
			}
		})
	}
}

func TestBakedPaths(t *testing.T) {
	dir := fakeTree(t)
	p, err := Resolve(dir, []string{"virtio_blk", "dm_verity"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range p.Baked() {
		got[m.Name] = m.Path
	}
	want := map[string]string{
		"virtio":     "/lib/modules/6.1.0-test/kernel/drivers/virtio/virtio.ko",
		"virtio_blk": "/lib/modules/6.1.0-test/kernel/drivers/block/virtio_blk.ko",
		"dm_mod":     "/lib/modules/6.1.0-test/kernel/drivers/md/dm-mod.ko",
		"dm_verity":  "/lib/modules/6.1.0-test/kernel/drivers/md/dm-verity.ko",
	}
	for name, path := range want {
		if got[name] != path {
			t.Errorf("%s: baked path %q, want %q", name, got[name], path)
		}
	}
	// Device aliases are baked for a driver whose devices are all on the
	// buses the init reads, block-major and devname aliases left out; a
	// module with an alias on another bus (ACPI here) has none.
	aliases := map[string][]string{}
	for _, m := range p.Baked() {
		aliases[m.Name] = m.Aliases
	}
	if got, want := aliases["virtio_blk"], []string{"pci:v00001AF4d00001001sv*sd*bc*sc*i*", "virtio:d00000002v*"}; !slices.Equal(got, want) {
		t.Errorf("virtio_blk: baked aliases %q, want %q", got, want)
	}
	if got := aliases["dm_verity"]; got != nil {
		t.Errorf("dm_verity (an alias on the ACPI bus): baked aliases %q, want none", got)
	}
	if got := aliases["dm_mod"]; got != nil {
		t.Errorf("dm_mod (no alias): baked aliases %q, want none", got)
	}
	if src := p.Modules[1].Source; src != filepath.Join(dir, "kernel/drivers/block/virtio_blk.ko.gz") {
		t.Errorf("virtio_blk source %q, want the compressed file", src)
	}
}

func TestResolveOptional(t *testing.T) {
	p, err := ResolveRequest(fakeTree(t), Request{Required: []string{"xts"}, Optional: []string{"nvme", "ecb"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(p), []string{"xts", "ecb"}) || !slices.Equal(p.Skipped, []string{"nvme"}) {
		t.Fatalf("modules %v skipped %v, want [xts ecb] and [nvme]", names(p), p.Skipped)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(dir string)
		want   []string
		errs   []string
	}{
		{"missing module", nil, []string{"nvme"}, []string{`module "nvme": not found in`, "6.1.0-test"}},
		{"missing modules.dep", func(dir string) { os.Remove(filepath.Join(dir, "modules.dep")) },
			[]string{"xts"}, []string{"modules.dep: not found: is KVER right and are modules installed? (run depmod)"}},
		{"missing module file", func(dir string) { os.Remove(filepath.Join(dir, "kernel/drivers/md/dm-mod.ko")) },
			[]string{"dm_verity"}, []string{"module dm_mod: listed in", "missing"}},
		{"dep without a line", func(dir string) {
			os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("kernel/crypto/xts.ko: kernel/crypto/gone.ko\n"), 0o644)
		}, []string{"xts"}, []string{"module xts: needs gone, which", "does not list"}},
		{"bad modules.dep", func(dir string) {
			os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("garbage\n"), 0o644)
		}, []string{"xts"}, []string{"modules.dep:1:", "garbage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeTree(t)
			if tt.break_ != nil {
				tt.break_(dir)
			}
			_, err := Resolve(dir, tt.want)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			for _, s := range tt.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ in, name string }{
		{"kernel/drivers/md/dm-crypt.ko", "dm_crypt"},
		{"kernel/drivers/md/dm-crypt.ko.zst", "dm_crypt"},
		{"kernel/fs/btrfs/btrfs.ko.xz", "btrfs"},
		{"kernel/arch/x86/crypto/crc32c-intel.ko.gz", "crc32c_intel"},
	}
	for _, tt := range tests {
		if got := NameFromPath(tt.in); got != tt.name {
			t.Errorf("NameFromPath(%q) = %q, want %q", tt.in, got, tt.name)
		}
	}
	if got := normalizeAlias("crypto-crc32c[a-z]-x"); got != "crypto_crc32c[a-z]_x" {
		t.Errorf("normalizeAlias kept or broke a range: %q", got)
	}
}

// hostModDir finds a real depmod output on this machine: the running
// kernel's, else any installed one (containers run a kernel whose modules
// are not installed).
func hostModDir(t testing.TB) string {
	t.Helper()
	release := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		release = strings.TrimSpace(string(b))
	}
	if dir := filepath.Join("/lib/modules", release); release != "" && fileExists(filepath.Join(dir, "modules.dep")) {
		return dir
	}
	deps, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(deps) == 0 {
		t.Skip("no /lib/modules/*/modules.dep on this host")
	}
	slices.Sort(deps)
	return filepath.Dir(deps[len(deps)-1])
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func TestResolveHost(t *testing.T) {
	dir := hostModDir(t)
	p, err := ResolveRequest(dir, Request{Required: []string{"btrfs", "dm-crypt"}, Optional: DefaultModules()})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, p)
	got := names(p)
	if !slices.Contains(got, "crc32c_generic") && !slices.Contains(got, "crc32c_intel") {
		t.Errorf("btrfs did not pull crc32c_generic or crc32c_intel: %v", got)
	}
	for _, want := range []string{"btrfs", "libcrc32c", "dm_crypt", "dm_mod", "xts", "ecb"} {
		if !slices.Contains(got, want) && !slices.Contains(p.Builtin, want) {
			t.Errorf("%s: plan lacks %s: %v", dir, want, got)
		}
	}
	t.Logf("%s: %d modules, builtin %v, skipped %v", dir, len(got), p.Builtin, p.Skipped)
}

func TestIsCPUCrypto(t *testing.T) {
	for path, want := range map[string]bool{
		"kernel/arch/x86/crypto/aesni-intel.ko":                              true,
		"/lib/modules/6.1.0-57-amd64/kernel/arch/x86/crypto/sha256-ssse3.ko": true,
		"kernel/arch/arm64/crypto/sha2-ce.ko":                                true,
		"kernel/crypto/xts.ko":                                               false,
		"kernel/drivers/crypto/padlock-aes.ko":                               false,
		"kernel/arch/x86/kvm/kvm.ko":                                         false,
		"/lib/modules/v/extra/kernel/arch/x86/crypto/x.ko":                   true,
		"notkernel/arch/x86/crypto/x.ko":                                     false,
	} {
		if got := IsCPUCrypto(path); got != want {
			t.Errorf("IsCPUCrypto(%q) = %v, want %v", path, got, want)
		}
	}
}
