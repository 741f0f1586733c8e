package proxyproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// nlbVector is the header captured from a real NLB (SPEC.md): 172.31.7.113:51442
// -> 172.31.10.31:80 through vpce-08d2bf15fac5001c9, CRC32C E8D6892D, 100 bytes.
var nlbVector = mustHex("0D0A0D0A000D0A515549540A" + "21" + "11" + "0054" +
	"AC1F0771" + "AC1F0A1F" + "C8F2" + "0050" +
	"03" + "0004" + "E8D6892D" +
	"EA" + "0017" + "01" + "767063652D3038643262663135666163353030316339" +
	"04" + "0024" + strings.Repeat("00", 36))

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestEncodeReproducesTheNLBHeaderByteForByte(t *testing.T) {
	if len(nlbVector) != 100 {
		t.Fatalf("vector is %d bytes", len(nlbVector))
	}
	h := NLB(netip.MustParseAddrPort("172.31.7.113:51442"), netip.MustParseAddrPort("172.31.10.31:80"), "vpce-08d2bf15fac5001c9")
	var buf [256]byte
	n, err := h.Encode(buf[:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], nlbVector) {
		t.Fatalf("encoded\n%X\nwant\n%X", buf[:n], nlbVector)
	}
}

func TestDecodeTheNLBHeader(t *testing.T) {
	h, n, err := Decode(append(append([]byte{}, nlbVector...), "GET / HTTP/1.1\r\n"...))
	if err != nil {
		t.Fatal(err)
	}
	if n != 100 || h.Command != Proxy || h.Family != TCP4 || !h.HasCRC || !h.CRCOK {
		t.Fatalf("n=%d header %+v", n, h)
	}
	if h.Source.String() != "172.31.7.113:51442" || h.Destination.String() != "172.31.10.31:80" || h.VPCEndpointID != "vpce-08d2bf15fac5001c9" {
		t.Fatalf("decoded %v -> %v via %q", h.Source, h.Destination, h.VPCEndpointID)
	}
}

func TestRoundTrip(t *testing.T) {
	v4s, v4d := netip.MustParseAddrPort("198.18.1.4:40000"), netip.MustParseAddrPort("198.18.1.10:80")
	v6s, v6d := netip.MustParseAddrPort("[fd00:1::4]:40000"), netip.MustParseAddrPort("[fd00:1::10]:443")
	extra := []TLV{{Type: 0x02, Value: []byte("authority.example")}, {Type: 0x30, Value: []byte{}}}
	for _, fam := range []struct {
		name     string
		src, dst netip.AddrPort
		family   Family
	}{{"IPv4", v4s, v4d, TCP4}, {"IPv6", v6s, v6d, TCP6}} {
		for mask := 0; mask < 16; mask++ {
			h := Header{Command: Proxy, Source: fam.src, Destination: fam.dst}
			name := fam.name
			if mask&1 != 0 {
				h.VPCEndpointID, name = "vpce-0a1b2c3d4e5f60718", name+"+aws"
			}
			if mask&2 != 0 {
				h.CRC32C, name = true, name+"+crc"
			}
			if mask&4 != 0 {
				h.PadTo, name = NLBLength, name+"+noop"
			}
			if mask&8 != 0 {
				h.TLVs, name = extra, name+"+other"
			}
			t.Run(name, func(t *testing.T) {
				var buf [512]byte
				n, err := h.Encode(buf[:])
				if err != nil {
					t.Fatal(err)
				}
				if n != h.Len() {
					t.Fatalf("Encode wrote %d bytes, Len says %d", n, h.Len())
				}
				if h.PadTo > 0 && n < h.PadTo {
					t.Fatalf("padded header is %d bytes, want %d", n, h.PadTo)
				}
				got, m, err := Decode(buf[:n])
				if err != nil {
					t.Fatal(err)
				}
				if m != n || got.Family != fam.family || got.Source != h.Source || got.Destination != h.Destination ||
					got.VPCEndpointID != h.VPCEndpointID || got.HasCRC != h.CRC32C || got.CRCOK != h.CRC32C || len(got.TLVs) != len(h.TLVs) {
					t.Fatalf("decoded %+v from %+v", got, h)
				}
				for i := range h.TLVs {
					if got.TLVs[i].Type != h.TLVs[i].Type || !bytes.Equal(got.TLVs[i].Value, h.TLVs[i].Value) {
						t.Errorf("TLV %d: %+v, want %+v", i, got.TLVs[i], h.TLVs[i])
					}
				}
			})
		}
	}
}

func TestLocalHeader(t *testing.T) {
	h := Header{Command: Local, CRC32C: true}
	var buf [64]byte
	n, err := h.Encode(buf[:])
	if err != nil {
		t.Fatal(err)
	}
	if buf[12] != 0x20 || buf[13] != 0x00 {
		t.Fatalf("command/family bytes %X", buf[12:14])
	}
	got, _, err := Decode(buf[:n])
	if err != nil || got.Command != Local || got.Source.IsValid() || !got.CRCOK {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

func TestMalformedHeaders(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, nlbVector...)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version 1 text header", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ErrNoSignature},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrNoSignature},
		{"signature only", nlbVector[:12], ErrTruncated},
		{"cut in the addresses", nlbVector[:20], ErrTruncated},
		{"cut in the TLVs", nlbVector[:60], ErrTruncated},
		{"version 1 binary", mod(func(b []byte) []byte { b[12] = 0x11; return b }), ErrVersion},
		{"unknown command", mod(func(b []byte) []byte { b[12] = 0x2F; return b }), ErrCommand},
		{"UDP over IPv4", mod(func(b []byte) []byte { b[13] = 0x12; return b }), ErrFamily},
		{"unix socket", mod(func(b []byte) []byte { b[13] = 0x31; return b }), ErrFamily},
		{"length shorter than IPv4 addresses", mod(func(b []byte) []byte { b[14], b[15] = 0, 8; return b[:24] }), ErrAddressLength},
		{"IPv6 family on IPv4 length", mod(func(b []byte) []byte { b[13] = 0x21; b[14], b[15] = 0, 20; return b[:36] }), ErrAddressLength},
		{"TLV longer than the header", mod(func(b []byte) []byte { b[29] = 0xFF; return b }), ErrTLV},
		{"TLV header cut", mod(func(b []byte) []byte { b[14], b[15] = 0, 14; return b[:30] }), ErrTLV},
		{"CRC TLV of 3 bytes", mod(func(b []byte) []byte { b[30] = 3; return b }), ErrCRCLength},
		{"CRC mismatch", mod(func(b []byte) []byte { b[20] ^= 1; return b }), ErrCRCMismatch},
		{"empty AWS TLV", mustHex("0D0A0D0A000D0A515549540A" + "21" + "11" + "000F" + "AC1F0771AC1F0A1FC8F20050" + "EA0000"), ErrAWSTLV},
		{"longer than the limit", mod(func(b []byte) []byte { b[14], b[15] = 0xFF, 0xFF; return b }), ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadTakesOnlyTheHeader(t *testing.T) {
	r := bytes.NewReader(append(append([]byte{}, nlbVector...), "payload"...))
	h, err := Decoder{}.Read(r)
	if err != nil || h.VPCEndpointID != "vpce-08d2bf15fac5001c9" {
		t.Fatalf("%+v %v", h, err)
	}
	rest := make([]byte, 16)
	n, _ := r.Read(rest)
	if string(rest[:n]) != "payload" {
		t.Fatalf("after the header: %q", rest[:n])
	}
}

func TestEncodeRefusesWhatItCannotWrite(t *testing.T) {
	var small [50]byte
	h := NLB(netip.MustParseAddrPort("172.31.7.113:51442"), netip.MustParseAddrPort("172.31.10.31:80"), "vpce-08d2bf15fac5001c9")
	if _, err := h.Encode(small[:]); !errors.Is(err, ErrBufferSize) {
		t.Errorf("small buffer: %v", err)
	}
	mixed := Header{Command: Proxy, Source: netip.MustParseAddrPort("1.2.3.4:1"), Destination: netip.MustParseAddrPort("[fd00::1]:2")}
	var buf [128]byte
	if _, err := mixed.Encode(buf[:]); !errors.Is(err, ErrMixedFamilies) {
		t.Errorf("mixed families: %v", err)
	}
	if _, err := (&Header{Command: Proxy}).Encode(buf[:]); !errors.Is(err, ErrNoAddress) {
		t.Errorf("no address: %v", err)
	}
}

func TestEncodeAllocatesNothing(t *testing.T) {
	h := NLB(netip.MustParseAddrPort("172.31.7.113:51442"), netip.MustParseAddrPort("172.31.10.31:80"), "vpce-08d2bf15fac5001c9")
	var buf [128]byte
	if n := testing.AllocsPerRun(1000, func() { h.Encode(buf[:]) }); n != 0 {
		t.Errorf("Encode allocates %.1f times", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(nlbVector)
	h := Header{Command: Proxy, Source: netip.MustParseAddrPort("[fd00:1::4]:1"), Destination: netip.MustParseAddrPort("[fd00:1::10]:2"), VPCEndpointID: "vpce-1", CRC32C: true, TLVs: []TLV{{Type: 5, Value: []byte("x")}}}
	var buf [256]byte
	n, _ := h.Encode(buf[:])
	f.Add(buf[:n])
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Decode(b)
		if err != nil && !errors.Is(err, ErrCRCMismatch) {
			return
		}
		if n < FixedLen || n > len(b) {
			t.Fatalf("length %d for %d bytes of input", n, len(b))
		}
		if h.HasCRC && err == nil && !h.CRCOK {
			t.Fatal("CRC present, no error, but not OK")
		}
		// What decodes must encode again into a header that decodes to
		// the same addresses and endpoint id.
		if err == nil && (h.Family == TCP4 || h.Family == TCP6) && h.Command == Proxy {
			re := Header{Command: Proxy, Source: h.Source, Destination: h.Destination, VPCEndpointID: h.VPCEndpointID, CRC32C: h.HasCRC}
			out := make([]byte, re.Len())
			if len(out) > FixedLen+0xFFFF {
				return
			}
			if _, err := re.Encode(out); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			back, _, err := Decoder{MaxLength: 1 << 17}.Decode(out)
			if err != nil || back.Source != h.Source || back.Destination != h.Destination || back.VPCEndpointID != h.VPCEndpointID {
				t.Fatalf("re-encoded header decodes to %+v, %v", back, err)
			}
		}
	})
}

func BenchmarkEncodeNLB(b *testing.B) {
	h := NLB(netip.MustParseAddrPort("172.31.7.113:51442"), netip.MustParseAddrPort("172.31.10.31:80"), "vpce-08d2bf15fac5001c9")
	var buf [128]byte
	b.ReportAllocs()
	for b.Loop() {
		h.Encode(buf[:])
	}
}

func BenchmarkDecodeNLB(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Decode(nlbVector)
	}
}
