// Package devices finds the block devices the init needs, named by DEVSPEC
// (/dev/NAME, UUID=, PARTUUID=, LABEL=, PARTLABEL=).
//
// It listens to kernel uevents on a netlink socket opened before any module
// is loaded, re-announces devices that already exist (coldplug) and keeps a
// registry of block devices. Specs are resolved from the uevents (PARTNAME)
// and, lazily, by reading the partition table (GPT or MBR) of whole disks
// (PARTUUID: the 6.1 kernel's
// uevents do not carry it) and filesystem superblocks (UUID, LABEL). Waiting
// blocks on a condition variable fed by uevents; nothing sleeps and polls.
//
// The readers of on-disk bytes (ReadGPT, Probe) and the uevent parser are pure
// functions over io.ReaderAt and []byte so they can be unit- and fuzz-tested on
// the host; only netlink.go and coldplug.go touch the kernel.
package devices
