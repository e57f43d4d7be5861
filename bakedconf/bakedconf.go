// Package bakedconf is the configuration mkinitrd bakes into the initramfs and
// the init reads at boot. It is defined once here so that the writer (mkinitrd)
// and the reader (init) cannot drift apart.
package bakedconf

import (
	"encoding/json"
	"fmt"
	"os"
)

// Path is where the baked configuration lives inside the initramfs.
const Path = "/etc/keel/initrd.json"

// Version of the baked configuration format; bumped on incompatible change.
const Version = 1

// Config is everything mkinitrd decides at build time.
type Config struct {
	Version int `json:"version"`
	// Locked refuses every command-line option that would weaken the boot
	// (shell, rd.break, verity=off, untrusted roothash=, plain root=).
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
	// Kver is the kernel release the modules were built for.
	Kver string `json:"kver,omitempty"`
}

// Module is one kernel module to load, with the names of the modules that must
// be loaded before it (hard dependencies and pre-softdeps).
type Module struct {
	Name string   `json:"name"`
	Path string   `json:"path"` // inside the initramfs, uncompressed .ko
	Deps []string `json:"deps,omitempty"`
}

// Load reads and validates the baked configuration at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baked config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a baked configuration and checks its version.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
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

// Marshal encodes c deterministically (stable field order, indented).
func (c *Config) Marshal() ([]byte, error) {
	c.Version = Version
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
