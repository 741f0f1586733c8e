package flowtable

import (
	"syscall"
	"unsafe"
)

// hugePageMin is the smallest chain array worth backing with huge pages.
const hugePageMin = 4 << 20

// newChains allocates a chain array. A large one is advised into
// transparent huge pages before anything touches it (the kernel backs a
// fresh allocation lazily, and the runtime hands it out zeroed without
// writing it): with a million flows the chains span 32 MiB, and with 4 KiB
// pages nearly every lookup also missed the TLB. Where the kernel says no
// (THP off), the array is used as it is.
func newChains(n uint64) []chain {
	c := make([]chain, n)
	size := uintptr(n) * unsafe.Sizeof(chain{})
	if size < hugePageMin {
		return c
	}
	const huge = 2 << 20
	base := uintptr(unsafe.Pointer(&c[0]))
	start := (base+huge-1)&^(huge-1) - base // offsets into c
	end := (base+size)&^(huge-1) - base
	if end > start {
		b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&c[0]), start)), end-start)
		syscall.Madvise(b, 14 /* MADV_HUGEPAGE */)
	}
	return c
}
