//go:build !linux

package flowtable

func newChains(n uint64) []chain { return make([]chain, n) }
