package dataplane

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// virtioNetHdrLen is the size of the virtio-net header in front of every
// frame read from a TUN opened with IFF_VNET_HDR (struct virtio_net_hdr).
const virtioNetHdrLen = 10

// virtio-net header flags and GSO types (linux/virtio_net.h).
const (
	vnetFlagNeedsCsum = 1
	vnetGSONone       = 0
	vnetGSOTCPv4      = 1
	vnetGSOTCPv6      = 4
)

// readLoopGSO moves frames from the TUN into the netstack, reading the TUN
// itself instead of through wireguard's Read, so that a TCP GSO frame (up
// to 64 KiB that the consumer's kernel would have cut into MSS-sized
// packets) reaches gVisor whole: one trip through its IP and TCP input and
// one ACK per frame instead of one per packet. The 8500-byte rule applies
// to the packets the frame stands for (headers plus the GSO segment size),
// as they would be on the wire.
func (l *tunLink) readLoopGSO(f *os.File) error {
	<-l.attached
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Each read lands in a gVisor view that, when its packet is
	// delivered, becomes the packet's payload: no copy between the TUN and
	// the netstack. The virtio-net header goes to an array of its own
	// (readv), so the view is one pooled 64 KiB chunk. A frame that is
	// dropped leaves the view for the next read.
	var vh [virtioNetHdrLen]byte
	var v *buffer.View
	defer func() {
		if v != nil {
			v.Release()
		}
	}()
	iov := [][]byte{vh[:], nil}
	for {
		if v == nil {
			v = buffer.NewViewSize(buffer.MaxChunkSize)
		}
		iov[1] = v.AsSlice()
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Readv(int(fd), iov)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil // the TUN was closed
		}
		if rerr != nil {
			if errors.Is(rerr, unix.EBADFD) || errors.Is(rerr, syscall.EBADF) {
				return nil
			}
			l.eni.dropped(dropMalformed)
			continue
		}
		now := time.Now().UnixNano()
		l.eni.tunReads.Add(1)
		if n < virtioNetHdrLen {
			l.eni.dropped(dropMalformed)
			continue
		}
		adopted, bulk := l.deliverFrame(vh[:], iov[1][:n-virtioNetHdrLen], now, v)
		if adopted {
			v = nil
		}
		l.processDelivered(bulk)
	}
}

// deliverFrame judges one frame and hands what passes to the netstack. pkt
// is the start of v's bytes when v is not nil; deliverFrame reports
// whether v went with the packet, and whether the frame is one of a bulk
// transfer's (a GSO frame, a pure ACK), whose segments gVisor's
// processors take (stack.go).
func (l *tunLink) deliverFrame(vh, pkt []byte, now int64, v *buffer.View) (adopted, bulk bool) {
	l.eni.captureIn(pkt)
	flags, gsoType := vh[0], vh[1]
	gsoSize := int(binary.LittleEndian.Uint16(vh[4:]))
	csumStart := int(binary.LittleEndian.Uint16(vh[6:]))
	csumOffset := int(binary.LittleEndian.Uint16(vh[8:]))
	switch gsoType {
	case vnetGSONone:
		l.eni.tunPackets.Add(1)
		if flags&vnetFlagNeedsCsum != 0 {
			// The kernel left the transport checksum to us (CHECKSUM_PARTIAL):
			// the pseudo-header sum is in place, the rest is ours to add.
			at := csumStart + csumOffset
			if at+2 > len(pkt) || csumStart > len(pkt) {
				l.eni.dropped(dropMalformed)
				return false, false
			}
			initial := binary.BigEndian.Uint16(pkt[at:])
			pkt[at], pkt[at+1] = 0, 0
			binary.BigEndian.PutUint16(pkt[at:], ^checksum.Checksum(pkt[csumStart:], initial))
		}
		proto, hlen, ok := l.eni.ingress(pkt, now)
		l.eni.flowIn(pkt, 1, ok)
		if ok {
			l.hints.noteShort(pkt, hlen)
			return l.deliverIn(proto, pkt, hlen, v), pureAck(pkt, hlen)
		}
	case vnetGSOTCPv4, vnetGSOTCPv6:
		if gsoSize == 0 || csumStart+20 > len(pkt) {
			l.eni.dropped(dropMalformed)
			return false, false
		}
		tcpHLen := int(pkt[csumStart+12]>>4) * 4
		segs := (len(pkt) - csumStart - tcpHLen + gsoSize - 1) / max(gsoSize, 1)
		l.eni.tunPackets.Add(uint64(max(segs, 1)))
		if csumStart+tcpHLen+gsoSize > endpointMTU {
			// Each packet of the frame would exceed 8500 bytes on the wire.
			for i := 0; i < max(segs, 1); i++ {
				l.eni.dropped(dropOversize)
			}
			l.eni.flowIn(pkt, segs, false)
			return false, false
		}
		proto, hlen, ok := l.eni.ingressGSO(pkt, now)
		l.eni.flowIn(pkt, segs, ok)
		if ok {
			return l.deliverIn(proto, pkt, hlen, v), true
		}
	default:
		// UDP GSO and anything else: PrivateLink carries TCP only.
		l.eni.tunPackets.Add(1)
		l.eni.dropped(dropProtocol)
		l.eni.flowIn(pkt, 1, false)
	}
	return false, false
}

// pureAck reports whether pkt, a TCP packet ingress let through whose IP
// and TCP headers are hlen bytes, is an ACK alone: no payload, no SYN,
// FIN or RST.
func pureAck(pkt []byte, hlen int) bool {
	if len(pkt) != hlen {
		return false
	}
	_, th, ok := splitPacket(pkt)
	if !ok || len(th) < header.TCPMinimumSize {
		return false
	}
	return header.TCP(th).Flags()&(header.TCPFlagSyn|header.TCPFlagFin|header.TCPFlagRst) == 0
}

// deliverIn hands a packet that lies in v to the netstack: its IP and TCP
// headers copied into a small view of their own (a header view sharing
// the payload's chunk makes gVisor clone the whole chunk), the payload as
// v itself, trimmed to it. A payload under adoptMin is copied instead, as
// deliver does, and v kept for the next read: the next read would need a
// fresh 64 KiB chunk, which gVisor clears, and that costs more than
// copying a small payload.
func (l *tunLink) deliverIn(proto tcpip.NetworkProtocolNumber, pkt []byte, hlen int, v *buffer.View) bool {
	if v == nil || hlen <= 0 || len(pkt)-hlen < adoptMin {
		l.deliver(proto, pkt, hlen)
		return false
	}
	payload := buffer.MakeWithView(buffer.NewViewWithData(pkt[:hlen]))
	v.CapLength(len(pkt))
	v.TrimFront(hlen)
	payload.Append(v)
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	l.dispatcher.DeliverNetworkPacket(proto, pb)
	pb.DecRef()
	return true
}

// adoptMin is the smallest payload deliverIn hands over in its read view.
const adoptMin = 16 << 10

// deliver copies a checked packet into gVisor buffers (headers in a view of
// their own, see readLoop) and hands it to the netstack.
func (l *tunLink) deliver(proto tcpip.NetworkProtocolNumber, pkt []byte, hlen int) {
	var payload buffer.Buffer
	if hlen > 0 && hlen < len(pkt) {
		payload = buffer.MakeWithView(buffer.NewViewWithData(pkt[:hlen]))
		payload.Append(buffer.NewViewWithData(pkt[hlen:]))
	} else {
		payload = buffer.MakeWithData(pkt)
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	l.dispatcher.DeliverNetworkPacket(proto, pb)
	pb.DecRef()
}
