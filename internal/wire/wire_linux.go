// Package wire lets tests look at real packets: capture what crosses an
// interface in a network namespace (AF_PACKET), inject raw bytes into one,
// and read the TCP fields the tests check. Test support only.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/nsenter"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens an AF_PACKET datagram socket on an interface of a
// namespace (datagram: the kernel strips any link header; TUN and lo
// packets then start at the IP header).
func packetSocket(ns, ifname string) (int, int, error) {
	return packetSocketType(ns, ifname, unix.SOCK_DGRAM)
}

// packetSocketType is packetSocket with the socket type: SOCK_RAW is what
// PACKET_VNET_HDR needs (on a TUN there is no link header either way).
func packetSocketType(ns, ifname string, typ int) (int, int, error) {
	var fd, index int
	err := nsenter.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		index = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index})
	})
	if err != nil && fd > 0 {
		unix.Close(fd)
	}
	return fd, index, err
}

// Packet is a captured packet and its direction (unix.PACKET_HOST for
// received, unix.PACKET_OUTGOING for sent).
type Packet struct {
	Data     []byte
	Outgoing bool
	At       time.Time
}

// Capture records every packet crossing an interface.
type Capture struct {
	fd   int
	mu   sync.Mutex
	pkts []Packet
	done chan struct{}
}

// Listen starts capturing on ifname in ns.
func Listen(ns, ifname string) (*Capture, error) {
	fd, _, err := packetSocket(ns, ifname)
	if err != nil {
		return nil, fmt.Errorf("capture on %s in %s: %w", ifname, ns, err)
	}
	tv := unix.Timeval{Usec: 100000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	c := &Capture{fd: fd, done: make(chan struct{})}
	go c.loop()
	return c, nil
}

func (c *Capture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		p := Packet{Data: append([]byte(nil), buf[:n]...), At: time.Now()}
		if ll != nil {
			p.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		}
		c.mu.Lock()
		c.pkts = append(c.pkts, p)
		c.mu.Unlock()
	}
}

// Close stops the capture.
func (c *Capture) Close() {
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	unix.Close(c.fd)
	<-c.done
}

// Packets returns what was captured so far.
func (c *Capture) Packets() []Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Packet(nil), c.pkts...)
}

// Wait returns the first captured packet matching pred, waiting up to d.
func (c *Capture) Wait(d time.Duration, pred func(Packet) bool) (Packet, bool) {
	deadline := time.Now().Add(d)
	for {
		for _, p := range c.Packets() {
			if pred(p) {
				return p, true
			}
		}
		if time.Now().After(deadline) {
			return Packet{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Injector writes raw IP packets into an interface, as if the namespace
// sent them through it: on a TUN they go straight to its reader.
type Injector struct {
	fd, index int
}

// NewInjector opens an injector on ifname in ns.
func NewInjector(ns, ifname string) (*Injector, error) {
	fd, index, err := packetSocket(ns, ifname)
	if err != nil {
		return nil, fmt.Errorf("inject on %s in %s: %w", ifname, ns, err)
	}
	return &Injector{fd: fd, index: index}, nil
}

// Send writes one packet; its first nibble picks IPv4 or IPv6 framing.
func (j *Injector) Send(pkt []byte) error {
	proto := uint16(unix.ETH_P_IP)
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	return unix.Sendto(j.fd, pkt, 0, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: j.index})
}

// Close closes the injector.
func (j *Injector) Close() { unix.Close(j.fd) }

// NewGSOInjector opens an injector whose packets carry a virtio-net header
// (PACKET_VNET_HDR), so that one send can be a TCP GSO frame, as a kernel
// with TSO hands a TUN.
func NewGSOInjector(ns, ifname string) (*Injector, error) {
	fd, index, err := packetSocketType(ns, ifname, unix.SOCK_RAW)
	if err != nil {
		return nil, fmt.Errorf("inject on %s in %s: %w", ifname, ns, err)
	}
	j := &Injector{fd: fd, index: index}
	if err := unix.SetsockoptInt(j.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		j.Close()
		return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
	}
	return j, nil
}

// SendGSO sends an IPv4 TCP frame as a GSO frame of segments of mss
// bytes, with its TCP checksum left partial (the pseudo-header sum in
// place), as the kernel leaves it.
func (j *Injector) SendGSO(frame []byte, mss int) error {
	ihl := int(frame[0]&0x0F) * 4
	tcpLen := int(frame[ihl+12]>>4) * 4
	var vh [10]byte
	vh[0] = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vh[1] = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	binary.LittleEndian.PutUint16(vh[2:], uint16(ihl+tcpLen))
	binary.LittleEndian.PutUint16(vh[4:], uint16(mss))
	binary.LittleEndian.PutUint16(vh[6:], uint16(ihl))
	binary.LittleEndian.PutUint16(vh[8:], 16)
	return j.Send(append(vh[:], frame...))
}

// TCP is the part of a TCP/IP packet the tests look at.
type TCP struct {
	Src, Dst netip.AddrPort
	Flags    byte
	MSS      int // 0 when the segment carries no MSS option
}

// TCP flag bits.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	ACK = 0x10
)

// ParseTCP reads an IPv4 or IPv6 TCP packet; ok is false for anything else.
func ParseTCP(b []byte) (TCP, bool) {
	var t TCP
	var src, dst netip.Addr
	var tcp []byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0F) * 4
		if b[9] != 6 || len(b) < ihl+20 {
			return t, false
		}
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		tcp = b[ihl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		if b[6] != 6 || len(b) < 60 {
			return t, false
		}
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		tcp = b[40:]
	default:
		return t, false
	}
	t.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:]))
	t.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:]))
	t.Flags = tcp[13]
	off := int(tcp[12]>>4) * 4
	if off > len(tcp) {
		return t, false
	}
	for opts := tcp[20:off]; len(opts) > 0; {
		switch opts[0] {
		case 0:
			opts = nil
		case 1:
			opts = opts[1:]
		default:
			if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
				opts = nil
				continue
			}
			if opts[0] == 2 && opts[1] == 4 {
				t.MSS = int(binary.BigEndian.Uint16(opts[2:]))
			}
			opts = opts[opts[1]:]
		}
	}
	return t, true
}

// IsICMPError reports whether a packet is an ICMP or ICMPv6 error (type 3
// destination unreachable, incl. fragmentation needed; ICMPv6 1-4,
// including packet too big).
func IsICMPError(b []byte) bool {
	switch {
	case len(b) >= 21 && b[0]>>4 == 4 && b[9] == 1:
		ihl := int(b[0]&0x0F) * 4
		return len(b) > ihl && (b[ihl] == 3 || b[ihl] == 11 || b[ihl] == 12)
	case len(b) >= 41 && b[0]>>4 == 6 && b[6] == 58:
		return b[40] >= 1 && b[40] <= 4
	}
	return false
}

// IsICMPEchoReply reports whether a packet is an ICMP or ICMPv6 echo reply.
func IsICMPEchoReply(b []byte) bool {
	switch {
	case len(b) >= 21 && b[0]>>4 == 4 && b[9] == 1:
		return b[int(b[0]&0x0F)*4] == 0
	case len(b) >= 41 && b[0]>>4 == 6 && b[6] == 58:
		return b[40] == 129
	}
	return false
}
