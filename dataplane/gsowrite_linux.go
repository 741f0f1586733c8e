package dataplane

import (
	"encoding/binary"
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Towards the consumer, the forwarder writes TCP segments of up to 64 KiB
// and lets the consumer's kernel cut them, as gVisor's own fdbased link
// does with a host that offloads segmentation: the link declares host GSO
// (SupportedGSO, GSOMaxSize), gVisor then hands it one large segment per
// send with the segment size in its GSO options, and each goes to the TUN
// in one writev behind a virtio-net header describing the cut. The packets
// a frame stands for are headers plus gso_size: gVisor sizes that from the
// consumer's MSS and the link MTU (8500), so the wire rule holds.
//
// With host GSO gVisor leaves only the pseudo-header sum in the checksum of
// every TCP segment of an established connection, short ones and pure ACKs
// included: each goes out flagged NEEDS_CSUM for the kernel to complete.
// SYN-ACKs and RSTs, sent before or outside a connection, carry full sums.
const (
	// gsoMaxSize is what the link tells gVisor a frame may be.
	gsoMaxSize = 1 << 16
	// gsoPayloadMax is the payload gVisor puts in one frame at most
	// (gsoMaxSize less the room it keeps for headers): the relay reads the
	// target in pieces of this size, so that a read becomes one frame
	// instead of a full one and a runt.
	gsoPayloadMax = gsoMaxSize - 161
)

// SupportedGSO implements stack.GSOEndpoint.
func (l *tunLink) SupportedGSO() stack.SupportedGSO {
	if l.gsoWrite != nil {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

// GSOMaxSize implements stack.GSOEndpoint.
func (l *tunLink) GSOMaxSize() uint32 {
	if l.gsoWrite != nil {
		return gsoMaxSize
	}
	return 0
}

// writeGSO writes packets one writev each: a virtio-net header, then the
// packet's own views, uncopied. Called under writeMu.
func (l *tunLink) writeGSO(pkts []*stack.PacketBuffer) (int, tcpip.Error) {
	if l.writev == nil {
		// Built once: a closure made per packet would be an allocation
		// per packet, as would the header and the error it writes.
		l.writev = func(fd uintptr) bool {
			_, l.werr = unix.Writev(int(fd), l.iov)
			return l.werr != unix.EAGAIN
		}
	}
	vh := l.vh[:]
	for i, pkt := range pkts {
		l.eni.noteSent(pkt)
		clear(vh)
		g := pkt.GSOOptions
		if (g.Type == stack.GSOTCPv4 || g.Type == stack.GSOTCPv6) && g.NeedsCsum {
			nh := len(pkt.NetworkHeader().Slice())
			th := len(pkt.TransportHeader().Slice())
			vh[0] = vnetFlagNeedsCsum
			binary.LittleEndian.PutUint16(vh[6:], uint16(nh))                       // csum_start
			binary.LittleEndian.PutUint16(vh[8:], uint16(header.TCPChecksumOffset)) // csum_offset
			if pkt.Data().Size() > int(g.MSS) {
				vh[1] = vnetGSOTCPv4
				if g.Type == stack.GSOTCPv6 {
					vh[1] = vnetGSOTCPv6
				}
				binary.LittleEndian.PutUint16(vh[2:], uint16(nh+th)) // hdr_len
				binary.LittleEndian.PutUint16(vh[4:], g.MSS)         // gso_size
				l.eni.noteWirePacket(nh + th + int(g.MSS))
				mss := int(g.MSS)
				l.eni.tunWritePackets.Add(uint64((pkt.Data().Size() + mss - 1) / mss))
			} else {
				l.eni.noteWirePacket(pkt.Size())
				l.eni.tunWritePackets.Add(1)
			}
		} else {
			l.eni.noteWirePacket(pkt.Size())
			l.eni.tunWritePackets.Add(1)
		}
		l.eni.tunWrites.Add(1)
		l.iov = appendViews(append(l.iov[:0], vh), pkt)
		err := l.gsoWrite.Write(l.writev)
		werr := l.werr
		clear(l.iov) // keep no packet's views alive
		if err != nil {
			return i, &tcpip.ErrClosedForSend{}
		}
		if werr != nil && (errors.Is(werr, unix.EBADFD) || errors.Is(werr, syscall.EBADF)) {
			return i, &tcpip.ErrClosedForSend{}
		}
		// Any other refusal (the device down, a frame the kernel did
		// not take) loses the frame; TCP retransmits it.
	}
	return len(pkts), nil
}
