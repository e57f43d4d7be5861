package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/devices"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/unlock"
)

// dataState is the data partition once found, unlocked and mounted; it is
// set up once per boot and shared by the slot attempts.
type dataState struct {
	dev, fstype string
	stack       *mounts.Stack
}

// openData finds, unlocks and mounts the data partition, once. nil means
// there is none or it cannot be used (then the boot is volatile, loudly);
// an error is only returned for what must stop the boot (a wrong key).
func (b *boot) openData() (*dataState, error) {
	if b.dataDone {
		return b.data, nil
	}
	b.dataDone = true
	dev, err := b.findData()
	if err != nil || dev == "" {
		return nil, err
	}
	d, err := b.mountData(dev)
	if errors.Is(err, unlock.ErrNoKeySlot) {
		return nil, err
	}
	if err != nil {
		b.volatile(dev, err)
		return nil, nil
	}
	b.data = d
	return d, nil
}

// findData resolves data= (waited for like any device) or the default
// label (only looked up). "" means no data partition.
func (b *boot) findData() (string, error) {
	switch b.cfg.Data {
	case kargs.DataNone:
		b.log.Infof("data=none: fully volatile system")
		return "", nil
	case "":
		// Only on the system disk; its partition table says at once
		// whether there is one (it is optional).
		dev, err := b.waitForDefault("data", devices.LabelData)
		if err != nil {
			b.log.Infof("no data partition (PARTLABEL=data): / is volatile, /var and /home come from the image")
			return "", nil
		}
		return dev, nil
	}
	dev, err := b.waitFor("data", b.cfg.Data)
	if err != nil {
		b.volatile(b.cfg.Data, err)
		return "", nil
	}
	return dev, nil
}

// mountData unlocks dev when it is LUKS and mounts the filesystem inside.
func (b *boot) mountData(dev string) (*dataState, error) {
	fs, err := datapart.Probe(dev)
	if err != nil {
		return nil, err
	}
	if err := b.checkDataEncryption(fs.Type, fs.Type == datapart.LUKS); err != nil {
		return nil, err
	}
	d := &dataState{dev: dev, stack: mounts.NewStack()}
	b.rep.Data = &report.Data{Device: dev}
	if fs.Type == datapart.LUKS {
		b.need("dm_crypt")
		mapped, err := b.unlockData(dev)
		if err != nil {
			return nil, err
		}
		b.rep.Data.Encrypted, b.rep.Data.Device = true, mapped
		if fs, err = datapart.Probe(mapped); err != nil {
			return nil, err
		}
		dev = mapped
	}
	d.fstype = fs.Type
	b.rep.Data.FSType = fs.Type
	b.need(fs.Type)
	if err := d.stack.Do(datapart.Mount(dev, fs.Type, datapart.DefaultRoot)); err != nil {
		return nil, err
	}
	b.log.Infof("data partition %s (%s) mounted at %s", dev, fs.Type, datapart.DefaultRoot)
	return d, nil
}

// unlockData opens the LUKS volume with the baked key file, else with a
// passphrase typed on the console (a few tries).
func (b *boot) unlockData(dev string) (string, error) {
	const name = "keel-data"
	o := unlock.Opener{Role: "data"}
	if kf := b.baked.LUKSKeyfile; kf != "" {
		secret, err := os.ReadFile(kf)
		if err == nil {
			path, err := o.Open(dev, name, unlock.Key{Secret: secret, Kind: unlock.KeyFile})
			if err == nil || !errors.Is(err, unlock.ErrNoKeySlot) {
				return path, err
			}
			b.log.Warnf("%v", err)
		} else {
			b.log.Warnf("LUKS key file: %v", err)
		}
	}
	var path string
	err := unlock.Prompt(os.Stdin, 0, unlock.Describe("data", dev), unlock.DefaultTries, func(pass []byte) error {
		p, err := o.Open(dev, name, unlock.Key{Secret: pass, Kind: unlock.Passphrase})
		path = p
		return err
	})
	return path, err
}

// volatile reports, loudly, that the data partition is not used.
func (b *boot) volatile(dev string, err error) {
	msg := datapart.VolatileWarning(dev, err)
	b.log.Errorf("%s", msg)
	b.log.Console("keel: WARNING: %s", msg)
	b.rep.Warn("%s", msg)
	if b.rep.Data == nil {
		b.rep.Data = &report.Data{Device: dev}
	}
	b.rep.Data.Volatile = true
	if b.data != nil {
		for _, e := range b.data.stack.Undo() {
			b.log.Warnf("undo data mounts: %v", e)
		}
		b.data = nil
	}
}

// prepareData readies the data partition for this image: layout, /var seed,
// the image's upper, pruning. It returns the upper dir for
// overlay=persistent ("" when the boot is volatile).
func (b *boot) prepareData(layout mounts.Layout, imageID string) string {
	d := b.data
	if d == nil {
		return ""
	}
	slot := b.rep.Slot
	if b.rep.Mode != "slot" {
		slot = b.rep.Mode
	}
	if imageID == "" {
		slot = "" // a plain root has no image: no upper, nothing pruned
	}
	res, err := datapart.Prepare(datapart.Plan{
		Root: datapart.DefaultRoot, FSType: d.fstype, ImageVar: filepath.Join(layout.Lower, "var"),
		Slot: slot, ImageID: imageID,
	})
	if err != nil {
		b.volatile(d.dev, err)
		return ""
	}
	for _, w := range res.Warnings {
		b.log.Warnf("data: %s", w)
		b.rep.Warn("data: %s", w)
	}
	r := b.rep.Data
	r.Created, r.Seeded, r.Pruned, r.Upper, r.FreshUpper = res.Created, res.Seeded, res.Pruned, res.UpperDir, res.FreshUpper
	return res.UpperDir
}

// bindData binds /var and /home from the data partition into the new root.
func (b *boot) bindData(layout mounts.Layout) {
	if b.data == nil {
		return
	}
	for _, m := range datapart.Binds(datapart.DefaultRoot, layout.NewRoot) {
		if err := b.stack.Do(m); err != nil {
			b.volatile(b.data.dev, err)
			return
		}
		b.rep.Data.Binds = append(b.rep.Data.Binds, m.Target[len(layout.NewRoot):])
	}
}
