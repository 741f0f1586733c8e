package flowtable

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	crand "crypto/rand"
)

// Key is a flow's 5-tuple as the consumer opened it.
type Key struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Flow is one flow's record. Key and Value are set before Insert and never
// change; the counters and the activity time are atomics anyone may update.
type Flow struct {
	Key Key
	// Value is the owner's data about the flow (the forwarder's NAT
	// binding and connection handles).
	Value any

	created     int64 // unix nanoseconds
	lastActive  atomic.Int64
	idleTimeout atomic.Int64 // nanoseconds; 0 = never expires
	BytesIn     atomic.Uint64
	BytesOut    atomic.Uint64
	SegmentsIn  atomic.Uint64
	SegmentsOut atomic.Uint64
}

// NewFlow makes a record that is active now and expires after idle.
func NewFlow(k Key, value any, idle time.Duration, now time.Time) *Flow {
	f := &Flow{Key: k, Value: value, created: now.UnixNano()}
	f.lastActive.Store(now.UnixNano())
	f.idleTimeout.Store(int64(idle))
	return f
}

// Touch records activity at now (unix nanoseconds).
func (f *Flow) Touch(now int64) { f.lastActive.Store(now) }

// LastActive is the time of the last activity.
func (f *Flow) LastActive() time.Time { return time.Unix(0, f.lastActive.Load()) }

// Created is when the record was made.
func (f *Flow) Created() time.Time { return time.Unix(0, f.created) }

// IdleTimeout is how long the flow may stay idle.
func (f *Flow) IdleTimeout() time.Duration { return time.Duration(f.idleTimeout.Load()) }

// ErrFull is returned by Insert when the table holds its capacity.
var ErrFull = errors.New("flowtable: full")

// ErrExists is returned by Insert for a key already in the table.
var ErrExists = errors.New("flowtable: flow exists")

const (
	// slotsPerBucket: five slots, the tag word, the overflow pointer and the
	// writers' mutex make a chain head exactly one 64-byte cache line, so
	// a lookup that misses reads one line.
	slotsPerBucket = 5
	// loadSlots is the average number of flows per chain before the
	// table grows (and at capacity): 3 of 5 leaves few chains needing an
	// overflow bucket, which would cost a miss a second cache line.
	loadSlots = 3
)

// bucket is a group of slots. meta holds one tag byte per slot (0 = empty;
// the top byte of the hash with its low bit forced on); its top three bytes
// are always 0.
type bucket struct {
	meta  atomic.Uint64
	slots [slotsPerBucket]atomic.Pointer[Flow]
	next  atomic.Pointer[bucket]
}

// chain is the head bucket of a hash chain and the lock its writers take.
type chain struct {
	mu     sync.Mutex
	bucket // 8-byte mutex + 56-byte bucket: one cache line
}

// chainArray is one generation of the table's chains.
type chainArray struct {
	c    []chain
	mask uint64
}

// minChains is where a table starts: small tables stay in cache.
const minChains = 64

// hugePageMin is the smallest chain array worth backing with huge pages
// (newChains, where the system has them).
const hugePageMin = 4 << 20

// Table is a fixed-capacity concurrent flow table.
type Table struct {
	// cur is the chains in force; readers load it once per lookup. It is
	// replaced by a larger generation as the table fills (never beyond
	// what capacity needs), with every writer held off by resizeMu.
	cur       atomic.Pointer[chainArray]
	resizeMu  sync.RWMutex // writers hold it shared, a resize exclusively
	maxChains uint64
	seed      [4]uint64
	capacity  int64

	count   atomic.Int64
	refused atomic.Uint64
}

// New makes a table for at most capacity flows. It starts small and grows
// as flows arrive, so that a table far from full stays in cache.
func New(capacity int) *Table {
	if capacity < 1 {
		capacity = 1
	}
	max := uint64(1) << bits.Len64(uint64((capacity+loadSlots-1)/loadSlots))
	n := min(max, minChains)
	t := &Table{maxChains: max, capacity: int64(capacity)}
	t.cur.Store(&chainArray{c: newChains(n), mask: n - 1})
	var b [32]byte
	crand.Read(b[:])
	for i := range t.seed {
		t.seed[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return t
}

// Len is the number of flows in the table.
func (t *Table) Len() int { return int(t.count.Load()) }

// Capacity is the most flows the table holds.
func (t *Table) Capacity() int { return int(t.capacity) }

// Refused counts inserts refused because the table was full.
func (t *Table) Refused() uint64 { return t.refused.Load() }

// hash mixes the 5-tuple with the table's random seed (so a consumer
// cannot aim flows at one chain); it allocates nothing.
func (t *Table) hash(k *Key) uint64 {
	var a, b, c, e uint64
	if addrWordsOK {
		a, b = addrWords(&k.Src)
		c, e = addrWords(&k.Dst)
	} else {
		a, b = addrWordsSlow(k.Src)
		c, e = addrWordsSlow(k.Dst)
	}
	p := uint64(k.SrcPort)<<24 | uint64(k.DstPort)<<8 | uint64(k.Proto)
	// Two 64x64->128 multiplies (wyhash's mum) over the seeded words.
	return mum(a^c^p^t.seed[0]^t.seed[2], b^e^t.seed[1]^t.seed[3])
}

// addrWords reads the two 64-bit halves of an address straight out of its
// netip.Addr. As16 would give the same words, but through a 16-byte array
// the compiler copies on the stack with a 16-byte load over two 8-byte
// stores; that stalls store forwarding and cost half of a cached lookup.
// addrWordsOK says the layout was checked against As16 at start-up;
// without it the table uses addrWordsSlow.
func addrWords(a *netip.Addr) (hi, lo uint64) {
	w := (*[2]uint64)(unsafe.Pointer(a))
	return w[0], w[1]
}

func addrWordsSlow(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

var addrWordsOK = func() bool {
	if unsafe.Sizeof(netip.Addr{}) < 16 {
		return false
	}
	for _, s := range []string{"198.18.0.1", "255.255.255.254", "fd00::1:2", "::ffff:198.19.0.7", "fe80::1%eth0", "::"} {
		a := netip.MustParseAddr(s)
		hi, lo := addrWords(&a)
		if h, l := addrWordsSlow(a); h != hi || l != lo {
			return false
		}
	}
	return true
}()

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func tagOf(h uint64) uint64 { return (h >> 56) | 1 }

// matches returns a word with the high bit set in every byte of meta that
// equals tag (SWAR: a possible false positive only on a byte that borrows,
// which the key comparison then rejects).
func matches(meta, tag uint64) uint64 {
	x := meta ^ (lsb * tag)
	return (x - lsb) &^ x & slotMSBs
}

// slotMSBs keeps the high bits of the bytes that are slots.
const slotMSBs = msb >> (8 * (8 - slotsPerBucket))

// Lookup returns the flow of k, or nil. It takes no lock and allocates
// nothing.
func (t *Table) Lookup(k Key) *Flow {
	h := t.hash(&k)
	tag := tagOf(h)
	a := t.cur.Load()
	for b := &a.c[h&a.mask].bucket; b != nil; b = b.next.Load() {
		for m := matches(b.meta.Load(), tag); m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m) >> 3
			if f := b.slots[i].Load(); f != nil && f.Key == k {
				return f
			}
		}
	}
	return nil
}

// Insert adds f under f.Key. It refuses a key that is present (ErrExists)
// and a flow beyond capacity (ErrFull, counted).
func (t *Table) Insert(f *Flow) error {
	if t.count.Add(1) > t.capacity {
		t.count.Add(-1)
		t.refused.Add(1)
		return ErrFull
	}
	h := t.hash(&f.Key)
	t.resizeMu.RLock()
	a := t.cur.Load()
	err := a.insert(f, h)
	t.resizeMu.RUnlock()
	if err != nil {
		t.count.Add(-1)
		return err
	}
	if n := uint64(len(a.c)); n < t.maxChains && uint64(t.count.Load()) > n*loadSlots {
		t.grow(a)
	}
	return nil
}

// grow replaces the chains by twice as many, unless someone already did.
func (t *Table) grow(old *chainArray) {
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	if t.cur.Load() != old {
		return
	}
	n := uint64(len(old.c)) * 2
	next := &chainArray{c: newChains(n), mask: n - 1}
	for ci := range old.c {
		for b := &old.c[ci].bucket; b != nil; b = b.next.Load() {
			for i := range b.slots {
				if f := b.slots[i].Load(); f != nil {
					next.insert(f, t.hash(&f.Key))
				}
			}
		}
	}
	t.cur.Store(next)
}

// insert puts f in its chain under the chain's lock.
func (a *chainArray) insert(f *Flow, h uint64) error {
	tag := tagOf(h)
	c := &a.c[h&a.mask]
	c.mu.Lock()
	var free *bucket
	freeSlot := -1
	var last *bucket
	for b := &c.bucket; b != nil; b = b.next.Load() {
		meta := b.meta.Load()
		for m := matches(meta, tag); m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m) >> 3
			if g := b.slots[i].Load(); g != nil && g.Key == f.Key {
				c.mu.Unlock()
				return ErrExists
			}
		}
		if free == nil {
			for i := 0; i < slotsPerBucket; i++ {
				if meta>>(8*i)&0xFF == 0 {
					free, freeSlot = b, i
					break
				}
			}
		}
		last = b
	}
	if free == nil {
		free, freeSlot = &bucket{}, 0
		last.next.Store(free)
	}
	free.slots[freeSlot].Store(f)
	free.meta.Store(free.meta.Load() | tag<<(8*freeSlot))
	c.mu.Unlock()
	return nil
}

// Delete removes the flow of k and returns it, or nil.
func (t *Table) Delete(k Key) *Flow {
	return t.remove(&k, func(f *Flow) bool { return f.Key == k })
}

// DeleteFlow removes f if it is still the record under its key.
func (t *Table) DeleteFlow(f *Flow) bool {
	return t.remove(&f.Key, func(g *Flow) bool { return g == f }) != nil
}

// remove takes out of the chain of k the first record that is accepts.
func (t *Table) remove(k *Key, is func(*Flow) bool) *Flow {
	h := t.hash(k)
	tag := tagOf(h)
	t.resizeMu.RLock()
	defer t.resizeMu.RUnlock()
	a := t.cur.Load()
	c := &a.c[h&a.mask]
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := &c.bucket; b != nil; b = b.next.Load() {
		for m := matches(b.meta.Load(), tag); m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m) >> 3
			if f := b.slots[i].Load(); f != nil && is(f) {
				// The tag goes first, so a reader that sees the slot
				// empty-tagged never loads it.
				b.meta.Store(b.meta.Load() &^ (0xFF << (8 * i)))
				b.slots[i].Store(nil)
				t.count.Add(-1)
				return f
			}
		}
	}
	return nil
}

// Range calls fn for every flow until fn returns false. It takes no lock:
// flows inserted or deleted meanwhile may or may not be seen, each flow
// present throughout is seen once.
func (t *Table) Range(fn func(*Flow) bool) {
	a := t.cur.Load()
	for ci := range a.c {
		for b := &a.c[ci].bucket; b != nil; b = b.next.Load() {
			for i := range b.slots {
				if f := b.slots[i].Load(); f != nil {
					if !fn(f) {
						return
					}
				}
			}
		}
	}
}

// Expire deletes every flow idle for longer than its timeout at now and
// passes each to expired (outside any lock). It returns how many it removed.
func (t *Table) Expire(now time.Time, expired func(*Flow)) int {
	return t.ExpireUnless(now, nil, expired)
}

// ExpireUnless is Expire with a last word: a flow that looks idle is first
// passed to active (if not nil), which reports whether it saw activity the
// table did not (segments only a socket counted, for example); such a flow
// is marked active at now and kept.
func (t *Table) ExpireUnless(now time.Time, active func(*Flow) bool, expired func(*Flow)) int {
	n := now.UnixNano()
	removed := 0
	t.Range(func(f *Flow) bool {
		idle := f.idleTimeout.Load()
		if idle <= 0 || n-f.lastActive.Load() <= idle {
			return true
		}
		if active != nil && active(f) {
			f.Touch(n)
			return true
		}
		if t.DeleteFlow(f) {
			removed++
			if expired != nil {
				expired(f)
			}
		}
		return true
	})
	return removed
}
