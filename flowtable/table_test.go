package flowtable

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func key(i int) Key {
	return Key{
		Src:     netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)}),
		Dst:     netip.AddrFrom4([4]byte{198, 18, 1, 10}),
		SrcPort: uint16(i), DstPort: 80, Proto: 6,
	}
}

func TestInsertLookupDelete(t *testing.T) {
	tb := New(2000)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		if err := tb.Insert(NewFlow(key(i), i, time.Minute, now)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if tb.Len() != 1000 {
		t.Fatalf("Len = %d", tb.Len())
	}
	for i := 0; i < 1000; i++ {
		f := tb.Lookup(key(i))
		if f == nil || f.Value.(int) != i {
			t.Fatalf("lookup %d = %+v", i, f)
		}
	}
	if tb.Lookup(key(5000)) != nil {
		t.Fatal("found a key never inserted")
	}
	if err := tb.Insert(NewFlow(key(7), -1, time.Minute, now)); !errors.Is(err, ErrExists) {
		t.Fatalf("second insert of a key: %v", err)
	}
	if f := tb.Delete(key(7)); f == nil || f.Value.(int) != 7 {
		t.Fatalf("delete = %+v", f)
	}
	if tb.Lookup(key(7)) != nil || tb.Delete(key(7)) != nil || tb.Len() != 999 {
		t.Fatal("deleted flow still there")
	}
}

func TestFullTableRefusesAndCountsAndKeepsWorking(t *testing.T) {
	tb := New(100)
	now := time.Now()
	for i := 0; i < 100; i++ {
		if err := tb.Insert(NewFlow(key(i), nil, 0, now)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 100; i < 110; i++ {
		if err := tb.Insert(NewFlow(key(i), nil, 0, now)); !errors.Is(err, ErrFull) {
			t.Fatalf("insert beyond capacity: %v", err)
		}
	}
	if tb.Refused() != 10 || tb.Len() != 100 {
		t.Fatalf("refused %d, len %d", tb.Refused(), tb.Len())
	}
	for i := 0; i < 100; i++ {
		if tb.Lookup(key(i)) == nil {
			t.Fatalf("flow %d lost when the table filled", i)
		}
	}
	tb.Delete(key(0))
	if err := tb.Insert(NewFlow(key(100), nil, 0, now)); err != nil {
		t.Fatalf("insert after a delete: %v", err)
	}
}

func TestExpireRemovesOnlyIdleFlows(t *testing.T) {
	tb := New(100)
	start := time.Now()
	for i := 0; i < 10; i++ {
		tb.Insert(NewFlow(key(i), i, time.Second, start))
	}
	tb.Insert(NewFlow(key(99), 99, 0, start)) // never expires
	// Flows 0-4 stay active.
	for i := 0; i < 5; i++ {
		tb.Lookup(key(i)).Touch(start.Add(900 * time.Millisecond).UnixNano())
	}
	var expired []int
	n := tb.Expire(start.Add(1500*time.Millisecond), func(f *Flow) { expired = append(expired, f.Value.(int)) })
	if n != 5 || len(expired) != 5 || tb.Len() != 6 {
		t.Fatalf("expired %v (n=%d), %d left", expired, n, tb.Len())
	}
	for _, i := range expired {
		if i < 5 {
			t.Errorf("active flow %d expired", i)
		}
	}
}

func TestAFlowWithActivityOnlyItsOwnerSawIsKept(t *testing.T) {
	tb := New(100)
	start := time.Now()
	for i := 0; i < 4; i++ {
		tb.Insert(NewFlow(key(i), i, time.Second, start))
	}
	// Flows 0 and 1 had segments the table never saw (keepalives a socket
	// answered): the owner says so when asked.
	asked := 0
	later := start.Add(1500 * time.Millisecond)
	n := tb.ExpireUnless(later, func(f *Flow) bool { asked++; return f.Value.(int) < 2 }, nil)
	if n != 2 || asked != 4 || tb.Len() != 2 {
		t.Fatalf("expired %d (asked %d), %d left", n, asked, tb.Len())
	}
	if got := tb.Lookup(key(0)).LastActive(); !got.Equal(later) {
		t.Errorf("a kept flow's activity is %v, want the sweep's time", got)
	}
	// Not asked again before its timeout runs out anew.
	asked = 0
	tb.ExpireUnless(later.Add(500*time.Millisecond), func(*Flow) bool { asked++; return false }, nil)
	if asked != 0 {
		t.Errorf("%d flows asked while not idle", asked)
	}
}

// TestConcurrentStress runs inserters, deleters, readers, a ranger and an
// expirer at once (run it with -race) and checks that every flow that
// should be there is there exactly once, and nothing else.
func TestConcurrentStress(t *testing.T) {
	const (
		workers  = 4
		perOwner = 5000
		rounds   = 3
	)
	tb := New(workers * perOwner)
	now := time.Now()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var lookups, duplicates atomic.Int64

	// Readers: every lookup either misses or finds the right record.
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(workers * perOwner)
				if f := tb.Lookup(key(i)); f != nil {
					if f.Key != key(i) || f.Value.(int) != i {
						t.Errorf("lookup %d returned flow %v", i, f.Key)
						return
					}
				}
				lookups.Add(1)
			}
		}(uint64(r))
	}
	// An iterator that must see each record at most once per pass. (A key
	// may show up twice: deleted and inserted again during the pass, it is
	// a new record.)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			seen := map[*Flow]bool{}
			tb.Range(func(f *Flow) bool {
				if seen[f] {
					duplicates.Add(1)
				}
				seen[f] = true
				return true
			})
		}
	}()
	// An expirer over flows given a 1 ns timeout (keys >= 1<<20): it must
	// take exactly those.
	var expiredCount atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Expire(time.Now().Add(time.Second), func(f *Flow) {
				if f.IdleTimeout() != time.Nanosecond {
					t.Errorf("expired a flow with timeout %v", f.IdleTimeout())
				}
				expiredCount.Add(1)
			})
		}
	}()
	// Owners: each inserts and deletes its own keys over several rounds,
	// ending with the even keys present; they also throw short-lived flows
	// at the expirer, stopping below capacity.
	var owners sync.WaitGroup
	var shortLived atomic.Int64
	for w := 0; w < workers; w++ {
		owners.Add(1)
		go func(w int) {
			defer owners.Done()
			lo := w * perOwner
			for round := 0; round < rounds; round++ {
				for i := lo; i < lo+perOwner; i++ {
					if err := tb.Insert(NewFlow(key(i), i, time.Hour, now)); err != nil && !errors.Is(err, ErrFull) {
						t.Errorf("insert %d: %v", i, err)
					}
				}
				for i := lo; i < lo+perOwner; i++ {
					if i%2 == 1 || round < rounds-1 {
						if tb.Delete(key(i)) == nil {
							t.Errorf("round %d: flow %d lost", round, i)
						}
					}
				}
				if round < rounds-1 {
					for i := 0; i < 200; i++ {
						k := key(1<<20 + w*1000 + i)
						if tb.Insert(NewFlow(k, -1, time.Nanosecond, now)) == nil {
							shortLived.Add(1)
						}
					}
				}
			}
		}(w)
	}
	owners.Wait()
	// Let the expirer finish the short-lived flows.
	deadline := time.Now().Add(5 * time.Second)
	for expiredCount.Load() < shortLived.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if duplicates.Load() != 0 {
		t.Errorf("Range saw %d duplicates", duplicates.Load())
	}
	if expiredCount.Load() != shortLived.Load() {
		t.Errorf("expired %d of %d short-lived flows", expiredCount.Load(), shortLived.Load())
	}
	want := workers * perOwner / 2
	if tb.Len() != want {
		t.Errorf("Len = %d, want %d", tb.Len(), want)
	}
	count := map[Key]int{}
	tb.Range(func(f *Flow) bool { count[f.Key]++; return true })
	for i := 0; i < workers*perOwner; i++ {
		got := count[key(i)]
		if i%2 == 0 && got != 1 || i%2 == 1 && got != 0 {
			t.Fatalf("flow %d present %d times", i, got)
		}
	}
	if len(count) != want {
		t.Errorf("%d distinct flows, want %d", len(count), want)
	}
	t.Logf("%d lookups during the run", lookups.Load())
}

func TestLookupAllocatesNothing(t *testing.T) {
	tb := New(1000)
	for i := 0; i < 1000; i++ {
		tb.Insert(NewFlow(key(i), nil, 0, time.Now()))
	}
	k, miss := key(500), key(5000)
	if n := testing.AllocsPerRun(1000, func() { tb.Lookup(k); tb.Lookup(miss) }); n != 0 {
		t.Errorf("Lookup allocates %.1f times", n)
	}
}

// The fast path that reads netip.Addr's words must agree with As16 on this
// toolchain, for IPv4, IPv6 and mapped addresses; and the hash must not
// depend on which path computed it.
func TestAddrWords(t *testing.T) {
	if !addrWordsOK {
		t.Skip("netip.Addr's layout is not the one addrWords reads: the table hashes through As16")
	}
	for _, s := range []string{"0.0.0.0", "198.18.3.4", "fd00::abcd:1", "2001:db8::ffff:1", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		h, l := addrWords(&a)
		if h != binary.BigEndian.Uint64(b[:8]) || l != binary.BigEndian.Uint64(b[8:]) {
			t.Fatalf("%s: words %x %x, As16 says %x", s, h, l, b)
		}
	}
	tb := New(10)
	k := Key{Src: netip.MustParseAddr("198.18.0.9"), Dst: netip.MustParseAddr("198.18.1.10"), SrcPort: 4000, DstPort: 80, Proto: 6}
	h1 := tb.hash(&k)
	addrWordsOK = false
	h2 := tb.hash(&k)
	addrWordsOK = true
	if h1 != h2 {
		t.Fatalf("hash differs between paths: %x %x", h1, h2)
	}
}

// A table large enough for its chains to go on huge pages (4 MiB and up:
// newChains drops and re-advises that memory) holds and finds every flow
// through each growth.
func TestLargeTableFindsEveryFlow(t *testing.T) {
	const n = 400000
	tb := New(n)
	now := time.Now()
	for i := 0; i < n; i++ {
		if err := tb.Insert(NewFlow(key(i), i, 0, now)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if size := len(tb.cur.Load().c) * int(unsafe.Sizeof(chain{})); size < hugePageMin {
		t.Fatalf("chains span %d bytes, under the %d where huge pages start", size, hugePageMin)
	}
	for i := 0; i < n; i++ {
		if f := tb.Lookup(key(i)); f == nil || f.Value != i {
			t.Fatalf("flow %d: %v", i, f)
		}
	}
	if tb.Lookup(key(n+1)) != nil {
		t.Fatal("found a flow never inserted")
	}
}
