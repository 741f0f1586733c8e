package flowtable

import (
	"bytes"
	"os"
	"syscall"
	"unsafe"
)

// thpOff says transparent huge pages are switched off system-wide, so the
// advice below could only cost.
var thpOff = func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err != nil || bytes.Contains(b, []byte("[never]"))
}()

// newChains allocates a chain array. A large one is put on transparent huge
// pages before anything touches it: with a million flows the chains span
// 32 MiB, and with 4 KiB pages nearly every lookup also missed the TLB.
//
// The advice alone acts only where the kernel has not backed the memory
// yet, and the runtime mostly hands out memory it has used before (a busy
// forwarder allocates and frees all the time): such a range keeps its
// small pages. So the aligned part of the new array is also dropped
// (MADV_DONTNEED): it is all zeroes and nothing has been stored in it, an
// anonymous page reads as zeroes after the drop, and the next touch of
// each 2 MiB faults in a huge page. Where the kernel says no, the array is
// used as it is.
func newChains(n uint64) []chain {
	c := make([]chain, n)
	size := uintptr(n) * unsafe.Sizeof(chain{})
	if size < hugePageMin || thpOff {
		return c
	}
	const huge = 2 << 20
	base := uintptr(unsafe.Pointer(&c[0]))
	start := (base+huge-1)&^(huge-1) - base // offsets into c
	end := (base+size)&^(huge-1) - base
	if end > start {
		b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&c[0]), start)), end-start)
		if syscall.Madvise(b, 14 /* MADV_HUGEPAGE */) == nil {
			syscall.Madvise(b, syscall.MADV_DONTNEED)
		}
	}
	return c
}
