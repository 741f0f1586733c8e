package flowtable

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
)

// The same workloads on pvlink's table, sync.Map and xsync.Map, so one
// `go test -bench` run compares them side by side:
//
//	go test -run '^$' -bench . -benchmem ./flowtable/

// flowMap is the common face of the three maps.
type flowMap interface {
	load(Key) bool
	store(Key, *Flow)
	remove(Key)
}

type pvlinkMap struct{ t *Table }

func (m pvlinkMap) load(k Key) bool      { return m.t.Lookup(k) != nil }
func (m pvlinkMap) store(k Key, f *Flow) { m.t.Insert(f) }
func (m pvlinkMap) remove(k Key)         { m.t.Delete(k) }

type syncMap struct{ m *sync.Map }

func (m syncMap) load(k Key) bool      { _, ok := m.m.Load(k); return ok }
func (m syncMap) store(k Key, f *Flow) { m.m.Store(k, f) }
func (m syncMap) remove(k Key)         { m.m.Delete(k) }

type xsyncMap struct{ m *xsync.Map[Key, *Flow] }

func (m xsyncMap) load(k Key) bool      { _, ok := m.m.Load(k); return ok }
func (m xsyncMap) store(k Key, f *Flow) { m.m.Store(k, f) }
func (m xsyncMap) remove(k Key)         { m.m.Delete(k) }

var impls = []struct {
	name string
	make func(capacity int) flowMap
}{
	{"pvlink", func(c int) flowMap { return pvlinkMap{New(c)} }},
	{"sync.Map", func(int) flowMap { return syncMap{&sync.Map{}} }},
	{"xsync.Map", func(int) flowMap { return xsyncMap{xsync.NewMap[Key, *Flow]()} }},
}

// goroutines maps the names to b.RunParallel's parallelism at GOMAXPROCS=2
// (RunParallel starts parallelism*GOMAXPROCS goroutines); 1 runs a plain loop.
var goroutines = []int{1, 2, 8}

func runN(b *testing.B, g int, body func(i uint64)) {
	// Each measurement starts with no collection under way: one left
	// running by the benchmark before (insert-delete allocates a record
	// per operation) would hold a P during this one's first moments.
	runtime.GC()
	b.ResetTimer()
	if g == 1 {
		var i uint64
		for b.Loop() {
			body(i)
			i++
		}
		return
	}
	b.SetParallelism(max(1, g/2))
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1 << 32)
		for pb.Next() {
			body(i)
			i++
		}
	})
}

var residentCache = map[int][]Key{}

func residentKeys(n int) []Key {
	if k, ok := residentCache[n]; ok {
		return k
	}
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = key(i)
	}
	residentCache[n] = keys
	return keys
}

// BenchmarkFlowTable fills all three maps with the resident flows first,
// then measures each workload on the three one after the other, so the
// figures side by side were taken within seconds of each other. (This VM's
// speed drifts by 10-50% over minutes; measuring all of one map's cells and
// then all of the next compared different moments as much as different
// maps.)
func BenchmarkFlowTable(b *testing.B) {
	now := time.Now()
	for _, resident := range []int{1000, 1000000} {
		keys := residentKeys(resident)
		maps := make([]flowMap, len(impls))
		for i, impl := range impls {
			maps[i] = impl.make(resident + 1<<16)
			for _, k := range keys {
				maps[i].store(k, NewFlow(k, nil, 0, now))
			}
		}
		// Finish the collection the filling started now: a GC cycle
		// running under the first parallel benchmark would take a core
		// from whichever map happens to be measured first.
		runtime.GC()
		for _, g := range goroutines {
			for _, op := range []string{"lookup-hit", "lookup-miss", "insert-delete"} {
				for i, impl := range impls {
					m := maps[i]
					b.Run(fmt.Sprintf("op=%s/resident=%d/impl=%s/goroutines=%d", op, resident, impl.name, g), func(b *testing.B) {
						b.ReportAllocs()
						runN(b, g, workload(b, op, m, keys, resident, now))
					})
				}
			}
		}
	}
}

// workload is one operation's loop body.
func workload(b *testing.B, op string, m flowMap, keys []Key, resident int, now time.Time) func(i uint64) {
	switch op {
	case "lookup-hit":
		return func(i uint64) {
			if !m.load(keys[i%uint64(len(keys))]) {
				b.Fatal("miss")
			}
		}
	case "lookup-miss":
		miss := key(resident + 7)
		miss.DstPort = 81
		return func(i uint64) {
			k := miss
			k.SrcPort = uint16(i)
			if m.load(k) {
				b.Fatal("hit")
			}
		}
	default: // insert-delete
		return func(i uint64) {
			k := key(int(i))
			k.DstPort = uint16(1000 + i>>32) // distinct per goroutine
			m.store(k, NewFlow(k, nil, 0, now))
			m.remove(k)
		}
	}
}
