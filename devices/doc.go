// SPDX-License-Identifier: Apache-2.0

// Package devices finds the block devices the init needs, named by DEVSPEC
// (package devspec: /dev/NAME, UUID=, PARTUUID=, LABEL=, PARTLABEL=), and
// chooses the system disk.
//
// It listens to kernel uevents on a netlink socket opened before any module
// is loaded, re-announces devices that already exist (coldplug) and keeps a
// registry of block devices. Specs are resolved from the uevents (PARTNAME)
// and, lazily, by reading the partition table of whole disks (GPT, or MBR
// for PARTUUID=SSSSSSSS-PP; the 6.1 kernel's uevents carry no PARTUUID) and
// filesystem superblocks (UUID, LABEL). Waiting blocks on a condition
// variable fed by uevents; nothing sleeps and polls.
//
// The system disk (ChooseSystemDisk) is the one disk holding every slot
// label; keel's default-labelled partitions are taken from it only
// (WaitForOnDisk) and keel labels elsewhere are strays. slotctl builds the
// same registry from sysfs (LoadSysfs) and decides with the same code.
//
// The readers of on-disk bytes (ReadGPT, ReadMBR, Probe), the uevent parsers
// and the system disk decision are pure functions over io.ReaderAt, []byte
// or values, unit- and fuzz-tested on the host; only netlink.go,
// coldplug.go and sysfs.go (the one reader of /sys/class/block) touch the
// kernel. It knows nothing of slots, verity or mounts.
package devices
