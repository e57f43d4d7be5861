// SPDX-License-Identifier: Apache-2.0

// Package etcmerge carries the machine's /etc changes into a new image: a
// three-way merge of the old image's overlay upper (local changes: files,
// symlinks, whiteouts, opaque directories, metadata-only copy-ups), that
// image's own /etc (the base, which may be missing) and the new image's
// /etc, written as the new upper's etc/. Account databases (passwd, group,
// shadow, gshadow, subuid, subgid) are merged entry by entry.
//
// It walks only the local tree and looks entries up in base and new, so its
// cost follows the number of local changes, not the size of /etc. Out is
// either written from nothing or, InPlace, a copy of the local tree (a
// btrfs snapshot of the old upper) edited into the same result. It knows
// nothing of slots, data partitions or mounts: the caller names the four
// directories and makes the result atomic (datapart.NewUpper).
// docs/data.md has the rules table.
package etcmerge
