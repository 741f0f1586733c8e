// Package dns serves a fabric's DNS: a resolver per VPC, answering the
// names of the endpoints and private DNS names that VPC may see, and a
// fabric-wide "public" server, authoritative for the zones providers
// control (where they publish the TXT records that verify their private
// DNS names). Answers are built from data (Records), swapped whole when the
// model changes; nothing here knows the model. Each concern is a small
// step of one handler, as CoreDNS chains plugins: check the question,
// answer from the VPC's own names, forward what a public zone holds,
// refuse the rest: namespaces have no internet, so no open recursion.
package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// Records are names and what they answer, names in canonical form
// (lower case, trailing dot).
type Records struct {
	A    map[string][]netip.Addr
	AAAA map[string][]netip.Addr
	TXT  map[string][]string
	// Zones are the apexes this data is authoritative for: a name under
	// one of them that has no record is NXDOMAIN.
	Zones []string
}

// NewRecords returns empty records.
func NewRecords() *Records {
	return &Records{A: map[string][]netip.Addr{}, AAAA: map[string][]netip.Addr{}, TXT: map[string][]string{}}
}

// Name puts a name in canonical form.
func Name(s string) string { return mdns.CanonicalName(s) }

func (r *Records) has(name string) bool {
	return len(r.A[name]) > 0 || len(r.AAAA[name]) > 0 || len(r.TXT[name]) > 0
}

func (r *Records) inZone(name string) bool {
	for _, z := range r.Zones {
		if mdns.IsSubDomain(z, name) {
			return true
		}
	}
	return false
}

// ttl of every answer: short, as AWS's endpoint names' are (60 s), so a
// changed answer (an AZ that left) is seen soon.
const ttl = 60

// zoneOf is the closest of r's zones that name is in ("" if none).
func (r *Records) zoneOf(name string) string {
	zone := ""
	for _, z := range r.Zones {
		if mdns.IsSubDomain(z, name) && len(z) > len(zone) {
			zone = z
		}
	}
	return zone
}

// negative completes a negative answer (NXDOMAIN, or a name without
// records of the type asked: NODATA) with the SOA of the zone that holds
// the name, in the authority section, as Route 53 answers: so that a
// resolver may cache it (RFC 2308), for ttl, so that a name made after the
// question (an endpoint created since) is seen as soon as a changed
// answer would be.
func (r *Records) negative(m *mdns.Msg, name string) {
	zone := r.zoneOf(name)
	if zone == "" {
		return
	}
	m.Ns = append(m.Ns, &mdns.SOA{
		Hdr: mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:  "ns-0.awsdns-00.com.", Mbox: "awsdns-hostmaster.amazon.com.",
		Serial: 1, Refresh: 7200, Retry: 900, Expire: 1209600, Minttl: ttl,
	})
}

// answer fills m with name's records of qtype from r; found says whether
// r holds name at all.
func (r *Records) answer(m *mdns.Msg, name string, qtype uint16) (found bool) {
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
	}
	if !r.has(name) {
		return false
	}
	if qtype == mdns.TypeA || qtype == mdns.TypeANY {
		for _, a := range r.A[name] {
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: a.AsSlice()})
		}
	}
	if qtype == mdns.TypeAAAA || qtype == mdns.TypeANY {
		for _, a := range r.AAAA[name] {
			m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr(mdns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	if qtype == mdns.TypeTXT || qtype == mdns.TypeANY {
		for _, t := range r.TXT[name] {
			m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr(mdns.TypeTXT), Txt: splitTXT(t)})
		}
	}
	return true
}

// splitTXT cuts a value into the 255-byte strings a TXT record holds.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// question checks a query and returns its one question, or the reply that
// refuses it.
func question(req *mdns.Msg) (mdns.Question, *mdns.Msg) {
	m := new(mdns.Msg)
	switch {
	case req.Response:
		return mdns.Question{}, nil // not a query: no answer at all
	case req.Opcode != mdns.OpcodeQuery:
		return mdns.Question{}, m.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1 || req.Question[0].Qclass != mdns.ClassINET:
		return mdns.Question{}, m.SetRcode(req, mdns.RcodeFormatError)
	}
	return req.Question[0], nil
}

// Resolver answers the queries of one VPC.
type Resolver struct {
	// local are the VPC's names (endpoints, private DNS names), swapped
	// whole by Set; nil while the VPC's DNS support is off, when the
	// resolver answers nothing.
	local atomic.Pointer[Records]
	// public is the fabric's public server, to which queries for names in
	// its zones are forwarded; publicZones are those zones.
	public      atomic.Pointer[string]
	publicZones atomic.Pointer[[]string]
}

// NewResolver returns a resolver with no names yet.
func NewResolver() *Resolver {
	r := &Resolver{}
	r.local.Store(NewRecords())
	return r
}

// Set replaces the VPC's names, and where to forward the public zones'.
// Nil local silences the resolver: no query gets an answer, as a VPC's
// resolver with DNS support off.
func (r *Resolver) Set(local *Records, publicAddr string, publicZones []string) {
	r.local.Store(local)
	r.public.Store(&publicAddr)
	r.publicZones.Store(&publicZones)
}

// Answer is the resolver's reply to a query (nil: send nothing).
func (r *Resolver) Answer(req *mdns.Msg) *mdns.Msg {
	local := r.local.Load()
	if local == nil {
		return nil
	}
	q, refusal := question(req)
	if refusal != nil || req.Response {
		return refusal
	}
	name := Name(q.Name)
	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if local.answer(m, name, q.Qtype) {
		m.Authoritative = true
		if len(m.Answer) == 0 {
			local.negative(m, name)
		}
		return m
	}
	if local.inZone(name) {
		m.Authoritative = true
		m.SetRcode(req, mdns.RcodeNameError)
		local.negative(m, name)
		return m
	}
	if zones := r.publicZones.Load(); zones != nil {
		for _, z := range *zones {
			if mdns.IsSubDomain(z, name) {
				return r.forward(req)
			}
		}
	}
	// Not the fabric's: no recursion out of it.
	return m.SetRcode(req, mdns.RcodeRefused)
}

func (r *Resolver) forward(req *mdns.Msg) *mdns.Msg {
	addr := r.public.Load()
	m := new(mdns.Msg)
	if addr == nil || *addr == "" {
		return m.SetRcode(req, mdns.RcodeServerFailure)
	}
	c := &mdns.Client{Timeout: time.Second}
	out, _, err := c.Exchange(req.Copy(), *addr)
	if err != nil {
		return m.SetRcode(req, mdns.RcodeServerFailure)
	}
	out.Id = req.Id
	out.RecursionAvailable = true
	return out
}

// ServeDNS implements miekg/dns's Handler.
func (r *Resolver) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) { reply(w, req, r.Answer(req)) }

// Public is the fabric's public DNS server: authoritative for the zones
// providers control.
type Public struct {
	records atomic.Pointer[Records]
}

// NewPublic returns a public server with no zones yet.
func NewPublic() *Public {
	p := &Public{}
	p.records.Store(NewRecords())
	return p
}

// Set replaces its zones and records.
func (p *Public) Set(r *Records) { p.records.Store(r) }

// Answer is the public server's reply to a query.
func (p *Public) Answer(req *mdns.Msg) *mdns.Msg {
	q, refusal := question(req)
	if refusal != nil || req.Response {
		return refusal
	}
	name := Name(q.Name)
	m := new(mdns.Msg)
	m.SetReply(req)
	r := p.records.Load()
	if !r.inZone(name) {
		return m.SetRcode(req, mdns.RcodeRefused)
	}
	m.Authoritative = true
	if !r.answer(m, name, q.Qtype) {
		m.SetRcode(req, mdns.RcodeNameError)
	}
	if len(m.Answer) == 0 {
		r.negative(m, name)
	}
	return m
}

// ServeDNS implements miekg/dns's Handler.
func (p *Public) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) { reply(w, req, p.Answer(req)) }

// ednsSize is the UDP payload size the servers offer a client that speaks
// EDNS (the size DNS Flag Day 2020 settled on).
const ednsSize = 1232

func reply(w mdns.ResponseWriter, req, m *mdns.Msg) {
	if m == nil {
		return
	}
	// A UDP answer that does not fit is truncated; the client asks again
	// over TCP. A query with EDNS gets EDNS back (RFC 6891), with what this
	// server offers; a forwarded answer has its own already.
	size := 512
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), 512), ednsSize)
		if m.IsEdns0() == nil {
			m.SetEdns0(ednsSize, false)
		}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// ListenPair listens for UDP and TCP on one free port of host. A port the
// kernel found free for UDP may be taken for TCP (an outgoing connection's,
// say): then it tries another, up to 20 times.
func ListenPair(host string) (net.PacketConn, net.Listener, error) {
	var err error
	for range 20 {
		pc, perr := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if perr != nil {
			return nil, nil, perr
		}
		ln, lerr := net.Listen("tcp", pc.LocalAddr().String())
		if lerr == nil {
			return pc, ln, nil
		}
		pc.Close()
		if err = lerr; !errors.Is(lerr, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, err
}

// Serve answers queries on a UDP socket and a TCP listener (both already
// made, in whatever namespace they belong to) until ctx ends.
func Serve(ctx context.Context, pc net.PacketConn, ln net.Listener, h mdns.Handler) {
	udp := &mdns.Server{PacketConn: pc, Handler: h}
	tcp := &mdns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	<-ctx.Done()
	udp.Shutdown()
	tcp.Shutdown()
}

// Lookup asks a server for name's TXT records (the private DNS name check
// asks the public server this way, over the wire).
func Lookup(addr, name string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(Name(name), qtype)
	c := &mdns.Client{Timeout: 2 * time.Second}
	out, _, err := c.Exchange(m, addr)
	return out, err
}

// TXT lists the TXT values of an answer, each joined whole.
func TXT(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if t, ok := rr.(*mdns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}
