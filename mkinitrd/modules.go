// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/initramfs"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/kmod/kofile"
)

// addModules resolves the wanted modules, adds them decompressed with the
// firmware they declare, and returns the load plan and the firmware count.
func addModules(a initramfs.Archive, o *options, stderr io.Writer) ([]bakedconf.Module, int, error) {
	req := kmod.Request{Required: o.modules}
	if !o.noDefault {
		req.Optional = kmod.DefaultModules()
	}
	if len(req.Required)+len(req.Optional) == 0 {
		return nil, 0, nil
	}
	modDir := filepath.Join(o.sysroot, "lib/modules", o.kver)
	plan, err := kmod.ResolveRequest(modDir, req)
	if err != nil {
		return nil, 0, err
	}
	for _, name := range plan.Skipped {
		fmt.Fprintf(stderr, "mkinitrd: warning: default module %s not available for %s, skipped\n", name, o.kver)
	}
	if o.verbose {
		for _, n := range plan.Notes {
			fmt.Fprintf(stderr, "mkinitrd: %s\n", n)
		}
		for _, n := range plan.Builtin {
			fmt.Fprintf(stderr, "mkinitrd: %s is built into the kernel\n", n)
		}
	}
	fwNames, err := addModuleFiles(a, plan.Modules)
	if err != nil {
		return nil, 0, err
	}
	found, missing := kofile.FindFirmware(filepath.Join(o.sysroot, "lib/firmware"), fwNames)
	for _, f := range found {
		if err := a.Add(f.Path, initramfs.File(f.Source, 0o644)); err != nil {
			return nil, 0, err
		}
	}
	if o.verbose && len(missing) > 0 {
		fmt.Fprintf(stderr, "mkinitrd: %d firmware files declared by modules but absent, skipped: %v\n", len(missing), missing)
	}
	return plan.Baked(), len(found), nil
}

// loaded is one module file read and decompressed.
type loaded struct {
	data     []byte
	firmware []string
	err      error
}

// addModuleFiles reads the modules in parallel (decompression dominates the
// build time), adds them in plan order and returns their firmware names.
func addModuleFiles(a initramfs.Archive, mods []kmod.Module) ([]string, error) {
	out := make([]loaded, len(mods))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, m := range mods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = readModule(m)
		}()
	}
	wg.Wait()
	var fw []string
	for i, m := range mods {
		if out[i].err != nil {
			return nil, out[i].err
		}
		if err := a.Add(m.Path, initramfs.Bytes(out[i].data, 0o644)); err != nil {
			return nil, err
		}
		fw = append(fw, out[i].firmware...)
	}
	return fw, nil
}

func readModule(m kmod.Module) loaded {
	data, err := kofile.Read(m.Source)
	if err != nil {
		return loaded{err: fmt.Errorf("module %s: %w", m.Name, err)}
	}
	fw, err := kofile.Firmware(data)
	if err != nil {
		return loaded{err: fmt.Errorf("module %s: %s: %w", m.Name, m.Source, err)}
	}
	return loaded{data: data, firmware: fw}
}
