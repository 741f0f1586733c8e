package proxyproto_test

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"testing"

	pires "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"pvlink.dev/pvlink/proxyproto"
)

// The independent parser (github.com/pires/go-proxyproto) must read what
// pvlink writes, and pvlink must read what it writes.

func TestPiresReadsPvlinkHeaders(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"198.18.1.4:40000", "198.18.1.10:80"},
		{"[fd00:1::4]:40000", "[fd00:1::10]:443"},
	} {
		h := proxyproto.NLB(netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst), "vpce-0a1b2c3d4e5f60718")
		var buf [256]byte
		n, err := h.Encode(buf[:])
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(bytes.NewReader(append(buf[:n:n], "hello"...)))
		ph, err := pires.Read(r)
		if err != nil {
			t.Fatalf("%s: pires: %v", tc.src, err)
		}
		src, dst, ok := ph.TCPAddrs()
		if !ok || src.String() != tc.src || dst.String() != tc.dst || ph.Command != pires.PROXY {
			t.Fatalf("pires read %v -> %v (ok=%v, command %v)", src, dst, ok, ph.Command)
		}
		tlvs, err := ph.TLVs()
		if err != nil {
			t.Fatal(err)
		}
		if id := tlvparse.FindAWSVPCEndpointID(tlvs); id != "vpce-0a1b2c3d4e5f60718" {
			t.Errorf("pires' AWS helper read endpoint id %q", id)
		}
		rest, _ := r.ReadString(0)
		if rest != "hello" {
			t.Errorf("pires left %q after the header", rest)
		}
	}
}

func TestPvlinkReadsPiresHeaders(t *testing.T) {
	for _, tc := range []struct {
		proto    pires.AddressFamilyAndProtocol
		src, dst string
	}{
		{pires.TCPv4, "198.18.1.4:40000", "198.18.1.10:80"},
		{pires.TCPv6, "[fd00:1::4]:40000", "[fd00:1::10]:443"},
	} {
		src, _ := net.ResolveTCPAddr("tcp", tc.src)
		dst, _ := net.ResolveTCPAddr("tcp", tc.dst)
		ph := &pires.Header{Version: 2, Command: pires.PROXY, TransportProtocol: tc.proto, SourceAddr: src, DestinationAddr: dst}
		aws := append([]byte{0x01}, "vpce-08d2bf15fac5001c9"...)
		if err := ph.SetTLVs([]pires.TLV{{Type: pires.PP2Type(0xEA), Value: aws}, {Type: pires.PP2_TYPE_AUTHORITY, Value: []byte("svc.example")}}); err != nil {
			t.Fatal(err)
		}
		b, err := ph.Format()
		if err != nil {
			t.Fatal(err)
		}
		h, n, err := proxyproto.Decode(b)
		if err != nil {
			t.Fatalf("pvlink: %v", err)
		}
		if n != len(b) || h.Source.String() != tc.src || h.Destination.String() != tc.dst || h.VPCEndpointID != "vpce-08d2bf15fac5001c9" {
			t.Fatalf("pvlink read %+v", h)
		}
		if len(h.TLVs) != 1 || string(h.TLVs[0].Value) != "svc.example" {
			t.Errorf("other TLVs: %+v", h.TLVs)
		}
	}
}
