// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keel-boot/keel/internal/build"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// tools are keel's own binaries, built once per test binary.
type tools struct{ dir, init, mkinitrd, slotctl string }

var (
	toolsOnce sync.Once
	toolsVal  tools
	toolsErr  error
	cacheMu   sync.Mutex
	initrds   = map[string]string{}
	keys      = map[string]string{}
)

func keelTools(t testing.TB) tools {
	t.Helper()
	toolsOnce.Do(func() {
		root, err := vm.ModuleRoot()
		if err != nil {
			toolsErr = err
			return
		}
		dir, err := os.MkdirTemp("", "keel-tools-")
		if err != nil {
			toolsErr = err
			return
		}
		// As `make build` does, the init's precompressed segment included:
		// the scenarios boot the images that ship.
		tl, err := build.Keel(root, dir)
		if err != nil {
			toolsErr = err
			return
		}
		toolsVal = tools{dir: dir, init: tl.Init, mkinitrd: tl.Mkinitrd, slotctl: tl.Slotctl}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsVal
}

// run runs a command and returns its combined output, failing t on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// runSplit runs a command and returns its stdout and stderr apart (a JSON
// answer and the warnings beside it), failing t on error.
func runSplit(t testing.TB, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	var o, e strings.Builder
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String()
}

// signingKey returns the private key file of a named test key (made once).
func signingKey(t testing.TB, name string) string {
	t.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	dir, err := os.MkdirTemp(keelTools(t).dir, "key-")
	if err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(dir, name+".key")
	run(t, keelTools(t).slotctl, "keygen", "--out", k)
	keys[name] = k
	return k
}

// initrd builds (once per distinct argument list) a keel initramfs for the
// test kernel with mkinitrd and the given extra flags.
func initrd(t testing.TB, args ...string) string {
	t.Helper()
	tl := keelTools(t)
	key := strings.Join(args, "\x00")
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if p, ok := initrds[key]; ok {
		return p
	}
	sum := sha256.Sum256([]byte(key))
	out := filepath.Join(tl.dir, "initrd-"+hex.EncodeToString(sum[:6])+".img")
	full := append([]string{"--out", out, "--kver", vm.KVer(t), "--init", tl.init}, args...)
	run(t, tl.mkinitrd, full...)
	initrds[key] = out
	return out
}

// sealed is a slot image: the SquashFS and its verity partition content.
type sealed struct {
	squashfs, verity, rootHash string
}

var rootHashRE = regexp.MustCompile(`root hash:\s+([0-9a-f]+)`)

// seal packs tree into a SquashFS and seals it, signed with key ("" for an
// unsigned header).
func seal(t testing.TB, tree, key, imageID string) sealed {
	t.Helper()
	return sealSquashfs(t, vm.MkSquashfs(t, tree), key, imageID)
}

// sealSquashfs seals the SquashFS file sq.
func sealSquashfs(t testing.TB, sq, key, imageID string) sealed {
	t.Helper()
	out := filepath.Join(t.TempDir(), "verity.img")
	args := []string{"seal", "--image", sq, "--out", out, "--image-id", imageID}
	if key != "" {
		args = append(args, "--key", key)
	}
	m := rootHashRE.FindStringSubmatch(run(t, keelTools(t).slotctl, args...))
	if m == nil {
		t.Fatal("slotctl seal printed no root hash")
	}
	return sealed{squashfs: sq, verity: out, rootHash: m[1]}
}

// payloadTree is a test root with the payload as /sbin/init and marker as
// the content of /etc/keel-test-marker.
func payloadTree(t testing.TB, marker string) string {
	t.Helper()
	dir := vm.RootTree(t, vm.BuildPayload(t))
	vm.WriteFile(t, dir, "etc/keel-test-marker", marker)
	return dir
}

// abDisk makes a GPT disk with both slots and a bootstate partition; a nil
// slot leaves its partitions empty.
func abDisk(t testing.TB, a, b *sealed, extra ...vm.Part) vm.Disk {
	t.Helper()
	parts := []vm.Part{}
	for _, s := range []struct {
		name string
		img  *sealed
	}{{"a", a}, {"b", b}} {
		root, ver := vm.Part{Name: "root-" + s.name, SizeMiB: 8}, vm.Part{Name: "verity-" + s.name, SizeMiB: 1}
		if s.img != nil {
			root.Content, ver.Content = s.img.squashfs, s.img.verity
			root.SizeMiB = sizeMiB(t, s.img.squashfs)
		}
		parts = append(parts, root, ver)
	}
	parts = append(parts, vm.Part{Name: "bootstate", SizeMiB: 1})
	return vm.NewDisk(t, "", append(parts, extra...))
}

func sizeMiB(t testing.TB, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size()>>20) + 2
}

// shellWorks types a command into the emergency shell and checks its output,
// proving the shell is interactive.
func shellWorks(t testing.TB, m *vm.VM) {
	t.Helper()
	m.Expect("keel# ")
	m.Send("echo shell-$((6*7))\n")
	m.Expect("shell-42")
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
