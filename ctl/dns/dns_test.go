package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"

	mdns "github.com/miekg/dns"
)

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(Name(name), qtype)
	return m
}

func resolverForTest() *Resolver {
	local := NewRecords()
	local.Zones = []string{"vpce.amazonaws.com.", "api.example.com."}
	n := Name("vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com")
	local.A[n] = []netip.Addr{netip.MustParseAddr("198.18.1.10"), netip.MustParseAddr("198.18.2.10")}
	local.AAAA[n] = []netip.Addr{netip.MustParseAddr("fd00:18:0:1::10")}
	r := NewResolver()
	r.Set(local, "", []string{"example.org."})
	return r
}

func TestTheResolverAnswersItsNamesAndRefusesTheRest(t *testing.T) {
	r := resolverForTest()
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA, mdns.RcodeSuccess, 2},
		{"VPCE-0123-ABCD.vpce-svc-0456.us-east-1.vpce.amazonaws.com.", mdns.TypeAAAA, mdns.RcodeSuccess, 1},
		{"vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeTXT, mdns.RcodeSuccess, 0},
		{"vpce-9999.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA, mdns.RcodeNameError, 0},
		{"www.google.com", mdns.TypeA, mdns.RcodeRefused, 0},
		{"x.example.org", mdns.TypeA, mdns.RcodeServerFailure, 0}, // a public zone, no public server here
	}
	for _, tc := range tests {
		m := r.Answer(query(tc.name, tc.qtype))
		if m.Rcode != tc.rcode || len(m.Answer) != tc.answers {
			t.Errorf("%s %s: rcode %s, %d answers; want %s, %d", tc.name, mdns.TypeToString[tc.qtype], mdns.RcodeToString[m.Rcode], len(m.Answer), mdns.RcodeToString[tc.rcode], tc.answers)
		}
	}
	// Not a query, two questions, another class.
	resp := query("a.vpce.amazonaws.com", mdns.TypeA)
	resp.Response = true
	if m := r.Answer(resp); m != nil {
		t.Error("a response was answered")
	}
	two := query("a.vpce.amazonaws.com", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if m := r.Answer(two); m.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s", mdns.RcodeToString[m.Rcode])
	}
}

func TestTheResolverForwardsThePublicZonesToThePublicServer(t *testing.T) {
	pub := NewPublic()
	recs := NewRecords()
	recs.Zones = []string{"example.org."}
	recs.TXT[Name("_verify.example.org")] = []string{"vpce:abc123"}
	pub.Set(recs)
	pubAddr := serveForTest(t, pub)
	r := resolverForTest()
	r.Set(r.local.Load(), pubAddr, []string{"example.org."})
	m := r.Answer(query("_verify.example.org", mdns.TypeTXT))
	if m.Rcode != mdns.RcodeSuccess || len(TXT(m)) != 1 || TXT(m)[0] != "vpce:abc123" {
		t.Fatalf("forwarded TXT: %v", m)
	}
	m = r.Answer(query("nothing.example.org", mdns.TypeTXT))
	if m.Rcode != mdns.RcodeNameError {
		t.Fatalf("a name the public zone lacks: %s", mdns.RcodeToString[m.Rcode])
	}
	if m, err := Lookup(pubAddr, "_verify.example.org", mdns.TypeTXT); err != nil || len(TXT(m)) != 1 {
		t.Fatalf("Lookup: %v %v", m, err)
	}
}

// A negative answer (NXDOMAIN, or a name with no records of the type
// asked) carries the SOA of the closest zone that holds the name, whose
// minimum is the answers' TTL, so resolvers may cache it briefly; a
// refusal carries none. Over the wire, a query with EDNS gets EDNS back,
// one without gets none.
func TestNegativeAnswersCarryTheirZonesSOAAndEDNSIsAnswered(t *testing.T) {
	r := resolverForTest()
	local := r.local.Load()
	local.Zones = append(local.Zones, "us-east-1.vpce.amazonaws.com.")
	soaOf := func(m *mdns.Msg) *mdns.SOA {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				return soa
			}
		}
		return nil
	}
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		zone  string // "": no SOA
	}{
		{"vpce-9999.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA, mdns.RcodeNameError, "us-east-1.vpce.amazonaws.com."},
		{"vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeTXT, mdns.RcodeSuccess, "us-east-1.vpce.amazonaws.com."},
		{"nothing.api.example.com", mdns.TypeAAAA, mdns.RcodeNameError, "api.example.com."},
		{"vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA, mdns.RcodeSuccess, ""},
		{"www.google.com", mdns.TypeA, mdns.RcodeRefused, ""},
	}
	for _, tc := range tests {
		m := r.Answer(query(tc.name, tc.qtype))
		soa := soaOf(m)
		switch {
		case m.Rcode != tc.rcode:
			t.Errorf("%s %s: rcode %s, want %s", tc.name, mdns.TypeToString[tc.qtype], mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tc.rcode])
		case tc.zone == "" && soa != nil:
			t.Errorf("%s %s: an SOA where none belongs: %v", tc.name, mdns.TypeToString[tc.qtype], soa)
		case tc.zone != "" && (soa == nil || soa.Hdr.Name != tc.zone || soa.Minttl != ttl || soa.Hdr.Ttl != ttl || !m.Authoritative):
			t.Errorf("%s %s: want the SOA of %s (TTL and minimum %d), authoritative; got %v (aa %v)", tc.name, mdns.TypeToString[tc.qtype], tc.zone, ttl, soa, m.Authoritative)
		}
	}
	pub := NewPublic()
	recs := NewRecords()
	recs.Zones = []string{"example.org."}
	pub.Set(recs)
	if m := pub.Answer(query("_verify.example.org", mdns.TypeTXT)); m.Rcode != mdns.RcodeNameError || soaOf(m) == nil || soaOf(m).Hdr.Name != "example.org." {
		t.Errorf("the public server's NXDOMAIN: %v", m)
	}

	addr := serveForTest(t, r)
	name := "vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com"
	for _, edns := range []bool{true, false} {
		q := query(name, mdns.TypeA)
		if edns {
			q.SetEdns0(4096, false)
		}
		m, _, err := (&mdns.Client{}).Exchange(q, addr)
		if err != nil {
			t.Fatal(err)
		}
		opt := m.IsEdns0()
		switch {
		case len(m.Answer) != 2:
			t.Errorf("EDNS %v: %d answers", edns, len(m.Answer))
		case edns && (opt == nil || opt.UDPSize() != ednsSize):
			t.Errorf("a query with EDNS: answer's OPT %v, want one offering %d", opt, ednsSize)
		case !edns && opt != nil:
			t.Errorf("a query without EDNS got an OPT back: %v", opt)
		}
	}
}

// FuzzResolver feeds the resolver's query path whatever bytes come: it
// answers or stays silent, and never fails.
func FuzzResolver(f *testing.F) {
	for _, q := range []*mdns.Msg{query("vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA), query("www.google.com", mdns.TypeAAAA)} {
		b, _ := q.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	r := resolverForTest()
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if req.Unpack(b) != nil {
			return // the server drops what does not parse
		}
		if m := r.Answer(req); m != nil {
			if _, err := m.Pack(); err != nil {
				t.Fatalf("an answer that does not pack: %v", err)
			}
		}
	})
}

// serveForTest serves h on a port of 127.0.0.1 until the test ends, and
// returns its address.
func serveForTest(t *testing.T, h mdns.Handler) string {
	t.Helper()
	pc, ln, err := ListenPair("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go Serve(ctx, pc, ln, h)
	return pc.LocalAddr().String()
}

func TestGarbageTruncatedAndOversizedQueriesLeaveTheResolverServing(t *testing.T) {
	r := resolverForTest()
	addr := serveForTest(t, r)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good, _ := query("vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA).Pack()
	for _, junk := range [][]byte{
		{0xde, 0xad},                        // too short for a header
		good[:len(good)-3],                  // truncated question
		append(good, make([]byte, 4000)...), // oversized, trailing bytes
		make([]byte, 65000),                 // all zeroes, near the UDP limit
	} {
		c.Write(junk)
	}
	// Over TCP too: a length prefix that lies, then a close.
	if tc, err := net.Dial("tcp", addr); err == nil {
		tc.Write([]byte{0xff, 0xff, 1, 2, 3})
		tc.Close()
	}
	m, err := Lookup(addr, "vpce-0123-abcd.vpce-svc-0456.us-east-1.vpce.amazonaws.com", mdns.TypeA)
	if err != nil || len(m.Answer) != 2 {
		t.Fatalf("after the garbage a good query gets %v, %v", m, err)
	}
}

// TestListenPairFindsAPortFreeForBoth takes a third of the ephemeral ports
// for TCP listeners, so that a port the kernel picks for UDP is often
// taken for TCP: every pair must still come with one port for both.
func TestListenPairFindsAPortFreeForBoth(t *testing.T) {
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo, &hi)
	}
	taken := 0
	for p := lo; p <= hi && taken < (hi-lo+1)/3; p += 3 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		defer ln.Close()
		taken++
	}
	if taken < (hi-lo+1)/6 {
		t.Skipf("only %d TCP ports could be taken (open files limit?)", taken)
	}
	t.Logf("%d of ports %d-%d taken for TCP", taken, lo, hi)
	for i := 0; i < 30; i++ {
		pc, ln, err := ListenPair("127.0.0.1")
		if err != nil {
			t.Fatalf("pair %d, with %d of ports %d-%d taken for TCP: %v", i, taken, lo, hi, err)
		}
		if pc.LocalAddr().String() != ln.Addr().String() {
			t.Fatalf("pair %d: UDP %s, TCP %s", i, pc.LocalAddr(), ln.Addr())
		}
		pc.Close()
		ln.Close()
	}
}
