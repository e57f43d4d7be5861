// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// VMModules are the modules the benchmark VM needs that the Debian kernel
// does not build in: the virtio disk and ext4. Every generator is given
// them, since none can detect the hardware of a machine it does not run on;
// otherwise each works in its host-only form.
func VMModules() []string { return []string{"virtio_pci", "virtio_blk", "ext4"} }

// DemoModules are those of keel's demo form: virtio, squashfs, overlay,
// dm-verity and btrfs (for the data partition). ext4 is not needed.
func DemoModules() []string {
	return []string{"virtio_pci", "virtio_blk", "squashfs", "overlay", "dm_verity", "btrfs"}
}

// Generator is one command that writes an initramfs to Out.
type Generator struct {
	Name string
	Out  string
	Args []string // argv; Args[0] is looked up in $PATH and the sbin directories
	Env  []string // added to the environment
}

// KeelTools are keel's binaries built for the benchmark.
type KeelTools struct{ Mkinitrd, Init, Slotctl string }

// KeelSmall is keel's image for a plain ext4 root: VMModules and the shell.
func KeelSmall(k KeelTools, kver, out string) Generator {
	return Generator{Name: "keel", Out: out, Args: []string{k.Mkinitrd, "--out", out, "--kver", kver, "--init", k.Init,
		"--no-default-modules", "--modules", strings.Join(VMModules(), ",")}}
}

// KeelDemo is keel's demo form, trusting the signing key pub.
func KeelDemo(k KeelTools, kver, out, pub string) Generator {
	return Generator{Name: "keel demo", Out: out, Args: []string{k.Mkinitrd, "--out", out, "--kver", kver, "--init", k.Init,
		"--no-default-modules", "--modules", strings.Join(DemoModules(), ","), "--trust", pub}}
}

// KeelGeneric is keel's generic default image (kmod.DefaultModules, no
// module option), trusting the signing key pub, plus extra options (a LUKS
// key file): the image `make install` users build.
func KeelGeneric(k KeelTools, kver, out, pub string, extra ...string) Generator {
	args := []string{k.Mkinitrd, "--out", out, "--kver", kver, "--init", k.Init, "--trust", pub}
	return Generator{Name: "keel generic", Out: out, Args: append(args, extra...)}
}

// initramfsConf is initramfs-tools' bookworm initramfs.conf with
// MODULES=dep, the host-only form. A private copy keeps the host's own
// configuration (and its /boot) out of the benchmark.
const initramfsConf = `MODULES=dep
BUSYBOX=auto
KEYMAP=n
COMPRESS=zstd
DEVICE=
NFSROOT=auto
RUNSIZE=10%
FSTYPE=auto
`

// InitramfsTools writes a private configuration directory under dir and
// returns mkinitramfs with it: MODULES=dep plus VMModules in its modules file.
func InitramfsTools(dir, kver, out string) (Generator, error) {
	conf := filepath.Join(dir, "initramfs-tools")
	files := map[string]string{
		"initramfs.conf": initramfsConf,
		"modules":        strings.Join(VMModules(), "\n") + "\n",
		"conf.d/resume":  "RESUME=none\n", // no swap to resume from in the VM
	}
	for _, d := range []string{"conf.d", "hooks", "scripts"} {
		if err := os.MkdirAll(filepath.Join(conf, d), 0o755); err != nil {
			return Generator{}, fmt.Errorf("initramfs-tools configuration: %w", err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(content), 0o644); err != nil {
			return Generator{}, fmt.Errorf("initramfs-tools configuration: %w", err)
		}
	}
	return Generator{Name: "initramfs-tools", Out: out, Args: []string{"mkinitramfs", "-d", conf, "-o", out, kver}}, nil
}

// Dracut is dracut --hostonly plus VMModules, reading no configuration of
// the host (an empty --confdir) and keeping its temporary files under dir.
func Dracut(dir, kver, out string) (Generator, error) {
	confDir := filepath.Join(dir, "dracut.conf.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return Generator{}, fmt.Errorf("dracut configuration: %w", err)
	}
	return Generator{Name: "dracut", Out: out, Args: []string{"dracut", "--quiet", "--conf", "/dev/null", "--confdir", confDir,
		"--tmpdir", dir, "--hostonly", "--no-hostonly-cmdline", "--add-drivers", strings.Join(VMModules(), " "),
		"--force", "--kver", kver, out}}, nil
}

// Tiny is tiny-initramfs with VMModules (its automatic detection looks at
// the host's root device, not the VM's) and no microcode.
func Tiny(dir, kver, out string) Generator {
	return Generator{Name: "tiny-initramfs", Out: out, Env: []string{"TMPDIR=" + dir}, Args: []string{"mktirfs", "-o", out,
		"--auto-modules=no", "--include-modules=" + strings.Join(VMModules(), ","), "--microcode=no", kver}}
}

// Time runs g once to warm the page cache (modules, firmware, the tools
// themselves), then runs times, and returns the wall times (process start
// to exit, as an operator waits for it) and the image's size.
func (g Generator) Time(runs int) (Summary, int64, error) {
	if _, err := g.run(); err != nil {
		return Summary{}, 0, err
	}
	var ds []time.Duration
	for range runs {
		d, err := g.run()
		if err != nil {
			return Summary{}, 0, err
		}
		ds = append(ds, d)
	}
	fi, err := os.Stat(g.Out)
	if err != nil {
		return Summary{}, 0, fmt.Errorf("%s: no image after the build: %w", g.Name, err)
	}
	return Summarize(ds), fi.Size(), nil
}

func (g Generator) run() (time.Duration, error) {
	path, err := LookPath(g.Args[0])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", g.Name, err)
	}
	cmd := exec.Command(path, g.Args[1:]...)
	cmd.Env = append(os.Environ(), g.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w\n%s", g.Name, strings.Join(g.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return d, nil
}

// LookPath is exec.LookPath that also searches the sbin directories, which
// a non-root $PATH lacks (mkinitramfs, mktirfs).
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not in $PATH, /usr/sbin or /sbin (bench/install-peers.sh installs the peers)", name)
}
