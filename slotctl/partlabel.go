package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// errNotFound is wrapped when no partition carries a label.
var errNotFound = errors.New("not found")

// findByLabel returns the device node of the partition labelled label on
// the running system below root ("/" outside tests): udev's
// /dev/disk/by-partlabel link when there is one, else the block device
// whose uevent says PARTNAME=label. The second way works without udev (in
// the initramfs' emergency shell, in minimal containers).
func findByLabel(root, label string) (string, error) {
	link := filepath.Join(root, "dev/disk/by-partlabel", label)
	if _, err := os.Stat(link); err == nil {
		return link, nil
	}
	found, err := scanPartNames(root, label)
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: %w: no partition with that GPT label (looked in %s and %s)",
			label, errNotFound, filepath.Join(root, "dev/disk/by-partlabel"), filepath.Join(root, "sys/class/block/*/uevent"))
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %d partitions carry that GPT label (%s), expected one: name the device with --disk or --bootstate",
		label, len(found), strings.Join(found, ", "))
}

// scanPartNames lists the device nodes whose uevent has PARTNAME=label.
func scanPartNames(root, label string) ([]string, error) {
	dir := filepath.Join(root, "sys/class/block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	var found []string
	for _, e := range ents {
		kv, err := readUevent(filepath.Join(dir, e.Name(), "uevent"))
		if err != nil || kv["PARTNAME"] != label {
			continue
		}
		name := kv["DEVNAME"]
		if name == "" {
			name = e.Name()
		}
		found = append(found, filepath.Join(root, "dev", name))
	}
	sort.Strings(found)
	return found, nil
}

// readUevent parses a sysfs uevent file: KEY=VALUE lines.
func readUevent(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}
