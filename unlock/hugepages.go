// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 (and arm64 4K-granule) transparent huge
// page; where it is larger, the advice covers less and costs nothing.
const hugePage = 2 << 20

// hugePagesMin is the smallest Argon2 memory worth the extra allocation.
const hugePagesMin = 8 << 20

// hugePagesSlack is advised past the end of the buffer, in case a small
// allocation of another goroutine takes the first pages of the freed range
// before Argon2 allocates (the Go heap hands out 512 KiB at a time).
const hugePagesSlack = 16 << 20

// argon2Block is x/crypto's argon2 block: 1 KiB, no pointers.
type argon2Block [128]uint64

// argon2Blocks is how many blocks x/crypto's argon2 allocates for memory
// KiB over threads lanes: memory rounded down to whole segments (4 per
// lane), at least two per segment.
func argon2Blocks(memory uint32, threads uint8) uint64 {
	seg := 4 * uint64(max(threads, 1))
	return max(uint64(memory)/seg*seg, 2*seg)
}

// hugePagesFor readies the Go heap for the buffer of x/crypto's Argon2 of
// memory KiB over threads lanes, which it allocates itself (it takes no
// caller memory): it allocates a buffer of the same size, asks the kernel
// to back its range (and hugePagesSlack more) with transparent huge pages
// (madvise MADV_HUGEPAGE: the Go runtime no longer does, and most kernels
// enable them only where asked), has the kernel fill them
// (MADV_POPULATE_WRITE) and frees it. The Go heap gives a large
// allocation the lowest free range that fits (a collection first frees
// every lower range that would fit), so Argon2's buffer takes the same
// range, and the advice stays with the mapping.
//
// Argon2 reads the blocks it mixes at random over all its memory: with
// 4 KiB pages nearly every read misses the TLB and the first pass takes a
// page fault every 4 KiB. With 2 MiB pages keel's Argon2id of a key slot
// at cryptsetup's default cost (836 MiB) needs about half the CPU time
// (docs/data.md, BENCHMARKS.md). The advice is only advice: where
// transparent huge pages are off nothing changes but the speed.
//
// fill is false where free memory could not hold the filled range and
// Argon2's buffer both, should Argon2's buffer land elsewhere after all:
// the range is then only advised.
func hugePagesFor(memory uint32, threads uint8, fill bool) {
	n := argon2Blocks(memory, threads)
	if n*uint64(unsafe.Sizeof(argon2Block{})) < hugePagesMin {
		return
	}
	runtime.GC() // frees what else is garbage, so the lowest range that fits is free now
	adviseHugePages(make([]argon2Block, n), fill)
	runtime.GC() // frees it: nothing refers to it any more
}

// adviseHugePages advises the huge pages overlapping b, and hugePagesSlack
// past its end, for transparent huge pages, and fills those within b when
// fill is set. The Go heap maps its memory in
// 4 MiB-aligned chunks, so the huge pages at both ends are heap memory;
// advice past the heap's mapped end fails with ENOMEM for that part only.
// Advice never changes memory contents, whoever uses it.
func adviseHugePages(b []argon2Block, fill bool) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	n := uint64(len(b)) * uint64(unsafe.Sizeof(argon2Block{}))
	start, size := hugePagesOver(p, n+hugePagesSlack)
	// An error (EINVAL: a kernel without THP) leaves 4 KiB pages.
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, uintptr(size), unix.MADV_HUGEPAGE)
	// Fill b's own huge pages now, while the advice surely holds: left to
	// the first touch, some runs got 4 KiB pages all the same. The Go heap
	// zeroes the range again when Argon2 allocates it (it was used), so
	// this costs only the kernel's zeroing. Kernels before 5.14 refuse
	// (EINVAL) and fault the pages in on first touch.
	if off, size := hugePagesWithin(p, n); fill && size > 0 {
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, p+uintptr(off), uintptr(size), unix.MADV_POPULATE_WRITE)
	}
	runtime.KeepAlive(b)
}

// hugePagesWithin returns the whole huge pages within the n bytes at
// address p: the offset of the first from p and their bytes (0: none).
func hugePagesWithin(p uintptr, n uint64) (off, size uint64) {
	off = uint64((hugePage - p%hugePage) % hugePage)
	if off >= n || n-off < hugePage {
		return 0, 0
	}
	return off, (n - off) &^ (hugePage - 1)
}

// hugePagesOver returns the huge pages overlapping the n bytes at address
// p: the address of the first and their bytes.
func hugePagesOver(p uintptr, n uint64) (start uintptr, size uint64) {
	start = p &^ (hugePage - 1)
	if n == 0 {
		return start, 0
	}
	end := (uint64(p) + n + hugePage - 1) &^ (hugePage - 1)
	return start, end - uint64(start)
}
