// SPDX-License-Identifier: Apache-2.0

// Package bakedconf is the configuration mkinitrd bakes into the initramfs and
// the init reads at boot. It is defined once here so that the writer (mkinitrd)
// and the reader (init) cannot drift apart.
package bakedconf

import (
	"encoding/base64"
	"fmt"
	"os"

	"github.com/keel-boot/keel/internal/minjson"
)

// Path is where the baked configuration lives inside the initramfs.
const Path = "/etc/keel/initrd.json"

// Version of the baked configuration format; bumped on incompatible change.
const Version = 1

// Config is everything mkinitrd decides at build time.
type Config struct {
	Version int `json:"version"`
	// Locked refuses every command-line option that would weaken the boot
	// (shell, rd.break, verity=off, untrusted roothash=, plain root=, device
	// overrides other than the baked ones: docs/cmdline.md).
	Locked bool `json:"locked,omitempty"`
	// Cmdline holds default options in kernel command-line syntax; the real
	// command line is parsed over them.
	Cmdline string `json:"cmdline,omitempty"`
	// Shell is the path inside the initramfs of the emergency shell, "" if none.
	Shell string `json:"shell,omitempty"`
	// TrustedKeys are raw ed25519 public keys (32 bytes each, base64 in JSON).
	TrustedKeys [][]byte `json:"trusted_keys,omitempty"`
	// Modules is the load plan, in an order where every module comes after
	// the modules it depends on.
	Modules []Module `json:"modules,omitempty"`
	// LUKSKeyfile is the path inside the initramfs of a key file for the data
	// partition, "" if none.
	LUKSKeyfile string `json:"luks_keyfile,omitempty"`
	// DataMustBeEncrypted refuses a plain (non-LUKS) data partition: the boot
	// goes volatile instead (mkinitrd --data-must-be-encrypted, the locked
	// default). Whoever can write a plain data partition offline controls the
	// upper layer over the verified root.
	DataMustBeEncrypted bool `json:"data_must_be_encrypted,omitempty"`
	// MaxUnconfirmed is how many boots of a good slot may go unconfirmed
	// before it is demoted (mkinitrd --max-unconfirmed); 0 means the
	// default, 3 (docs/formats.md, "Choosing a slot").
	MaxUnconfirmed int `json:"max_unconfirmed,omitempty"`
	// Kver is the kernel release the modules were built for.
	Kver string `json:"kver,omitempty"`
}

// Module is one kernel module to load, with the names of the modules that must
// be loaded before it (hard dependencies and pre-softdeps).
type Module struct {
	Name string   `json:"name"`
	Path string   `json:"path"` // inside the initramfs, uncompressed .ko
	Deps []string `json:"deps,omitempty"`
	// Aliases are the device aliases (modules.alias patterns) of a driver
	// whose devices the init can read (kmod.DeviceAliases): the init loads
	// a storage driver that has them only for a device they match.
	Aliases []string `json:"aliases,omitempty"`
}

// Load reads and validates the baked configuration at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baked config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a baked configuration and checks its version. As with
// encoding/json, members it does not know are ignored and a missing or null
// member leaves its field zero; unlike it, member names must match exactly
// (not case-insensitively) and array elements must not be null.
func Parse(b []byte) (*Config, error) {
	v, err := minjson.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("baked config: %w", err)
	}
	root := minjson.Root(v)
	c := Config{
		Version:     root.Opt("version").Int(),
		Locked:      root.Opt("locked").Bool(),
		Cmdline:     root.Opt("cmdline").Str(),
		Shell:       root.Opt("shell").Str(),
		LUKSKeyfile: root.Opt("luks_keyfile").Str(),
		Kver:        root.Opt("kver").Str(),

		DataMustBeEncrypted: root.Opt("data_must_be_encrypted").Bool(),
		MaxUnconfirmed:      int(root.Opt("max_unconfirmed").IntBetween(0, 255)),
	}
	if keys := root.Opt("trusted_keys").Items(); keys != nil {
		c.TrustedKeys = make([][]byte, 0, len(keys))
		for _, k := range keys {
			s := k.Str()
			if root.Err() != nil {
				break
			}
			key, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				k.Failf("expected standard base64, %v", err)
				break
			}
			c.TrustedKeys = append(c.TrustedKeys, key)
		}
	}
	if mods := root.Opt("modules").Items(); mods != nil {
		c.Modules = make([]Module, 0, len(mods))
		for _, m := range mods {
			c.Modules = append(c.Modules, Module{Name: m.Opt("name").Str(), Path: m.Opt("path").Str(), Deps: m.Opt("deps").Strings(), Aliases: m.Opt("aliases").Strings()})
		}
	}
	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("baked config: %w", err)
	}
	if c.Version != Version {
		return nil, fmt.Errorf("baked config: version %d, expected %d", c.Version, Version)
	}
	for i, k := range c.TrustedKeys {
		if len(k) != 32 {
			return nil, fmt.Errorf("baked config: trusted key %d is %d bytes, expected 32 (ed25519)", i, len(k))
		}
	}
	return &c, nil
}

// Marshal encodes c deterministically: the bytes encoding/json's
// MarshalIndent(c, "", "  ") writes, and a newline.
func (c *Config) Marshal() ([]byte, error) {
	c.Version = Version
	var w minjson.Writer
	w.BeginObject()
	w.Key("version")
	w.Int(int64(c.Version))
	if c.Locked {
		w.Key("locked")
		w.Bool(true)
	}
	optString(&w, "cmdline", c.Cmdline)
	optString(&w, "shell", c.Shell)
	if len(c.TrustedKeys) > 0 {
		w.Key("trusted_keys")
		w.BeginArray()
		for _, k := range c.TrustedKeys {
			if k == nil {
				w.Null() // as encoding/json writes a nil []byte
			} else {
				w.String(base64.StdEncoding.EncodeToString(k))
			}
		}
		w.EndArray()
	}
	if len(c.Modules) > 0 {
		w.Key("modules")
		w.BeginArray()
		for _, m := range c.Modules {
			w.BeginObject()
			w.Key("name")
			w.String(m.Name)
			w.Key("path")
			w.String(m.Path)
			optStrings(&w, "deps", m.Deps)
			optStrings(&w, "aliases", m.Aliases)
			w.EndObject()
		}
		w.EndArray()
	}
	optString(&w, "luks_keyfile", c.LUKSKeyfile)
	if c.DataMustBeEncrypted {
		w.Key("data_must_be_encrypted")
		w.Bool(true)
	}
	if c.MaxUnconfirmed != 0 {
		w.Key("max_unconfirmed")
		w.Int(int64(c.MaxUnconfirmed))
	}
	optString(&w, "kver", c.Kver)
	w.EndObject()
	b, err := w.Indented("", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// optString writes a string member tagged omitempty.
func optString(w *minjson.Writer, key, s string) {
	if s != "" {
		w.Key(key)
		w.String(s)
	}
}

// optStrings writes key and its array of strings unless it is empty.
func optStrings(w *minjson.Writer, key string, list []string) {
	if len(list) == 0 {
		return
	}
	w.Key(key)
	w.BeginArray()
	for _, s := range list {
		w.String(s)
	}
	w.EndArray()
}
