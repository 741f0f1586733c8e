package dataplane

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const (
	// tunOffset is the headroom wireguard's tun needs in front of every
	// packet to write a virtio-net header in place (10 bytes), rounded up.
	tunOffset = 16
	// endpointMTU is the largest packet a VPC endpoint accepts. Giving it
	// to gVisor as the link MTU also makes the netstack advertise MSS 8460
	// (IPv4) and 8440 (IPv6) on every SYN-ACK: the clamp SPEC asks for.
	endpointMTU = 8500
	// readViewSize holds any single packet the TUN hands us: segments of a
	// GSO frame are split by wireguard's tun to at most the device MTU
	// (9001), and so are plain packets. 16 KiB views come from gVisor's
	// chunk pools (up to 64 KiB).
	readViewSize = 16 << 10
	// writeBufSize holds one outgoing packet of the batched write path
	// (gVisor writes at most the link MTU, 8500 bytes, per packet there),
	// with room for wireguard's tun to coalesce the packets after it into
	// one GSO frame of up to 64 KiB.
	writeBufSize = tunOffset + 65535
)

// tunLink is a gVisor link endpoint over one ENI's TUN device. Inbound, it
// reads batches (wireguard's tun splits the kernel's GSO frames), runs the
// ingress filter on each packet in place, and hands survivors to the
// netstack. Outbound, it writes batches, which wireguard's tun coalesces
// back into GSO frames (GRO) for the consumer's kernel.
type tunLink struct {
	// dev is wireguard's tun, kept only on the batched path. On the GSO
	// path the link keeps the TUN's file alone (file): wireguard's device
	// makes GRO tables for its batched reads and writes (1.78 MB per
	// device), which that path never uses, and dropping the device lets
	// them be collected.
	dev      tun.Device
	file     *os.File
	eni      *eniState
	batch    int
	mtu      uint32
	attached chan struct{}

	// dispatcher is set once by Attach before the read loop delivers.
	dispatcher stack.NetworkDispatcher

	// writeMu guards wbufs: gVisor may call WritePackets from several
	// goroutines at once, and the TUN takes one batch at a time anyway.
	writeMu sync.Mutex
	wbufs   [][]byte
	// gsoWrite is the TUN's descriptor when frames go out whole with a
	// virtio-net header of the link's own (gsowrite_linux.go); iov is the
	// writev vector, header, error and write function it reuses. All are
	// guarded by writeMu.
	gsoWrite syscall.RawConn
	iov      [][]byte
	vh       [virtioNetHdrLen]byte
	werr     error
	writev   func(fd uintptr) bool

	// The pure ACKs held back for a segment to carry them (ackhold.go),
	// and the lists the holder reuses; all guarded by writeMu.
	held          [ackHoldSlots]heldAck
	holding       int
	out, released []*stack.PacketBuffer
	ackTimer      *time.Timer
	ackTimerArmed bool
	ackTimerAt    time.Duration // when the armed timer fires (monoNow)
	hints         ackHintSet    // the read loop's, with a lock of its own

	// segments, when not nil, takes the segments of each delivery: the
	// read loop's goroutine processes them, or hands them to gVisor's
	// processors (stack.go).
	segments segmentProcessor

	closeOnce sync.Once
	onClose   func()
}

func newTunLink(dev tun.Device, eni *eniState) *tunLink {
	batch := dev.BatchSize()
	if batch < 1 {
		batch = 1
	}
	// A batch size above one means wireguard's tun negotiated the
	// virtio-net header and TSO: frames can then be taken whole.
	l := &tunLink{dev: dev, eni: eni, batch: batch, mtu: endpointMTU, attached: make(chan struct{})}
	if batch > 1 {
		if f := dev.File(); f != nil {
			if rc, err := f.SyscallConn(); err == nil {
				l.file, l.gsoWrite, l.dev = f, rc, nil
			}
		}
	}
	if l.gsoWrite == nil {
		// Only the batched write path copies packets; the GSO path
		// writes gVisor's views as they are. A batch of these buffers is
		// 8 MiB per TUN (128 of 64 KiB): made for every ENI, thirty ENIs
		// put a forwarder's live heap over its memory budget while idle.
		l.wbufs = make([][]byte, batch)
		for i := range l.wbufs {
			l.wbufs[i] = make([]byte, writeBufSize)
		}
	}
	return l
}

// readLoop moves packets from the TUN into the netstack until the device is
// closed. wireguard's tun reads straight into pooled gVisor views, which are
// handed to the netstack without another copy: the headers go in a small
// view of their own, the payload stays where it was read. (One view for
// both would make gVisor clone the whole chunk when it parses the IP
// header, as its header view shares the chunk: a full copy per packet.)
func (l *tunLink) readLoop() error {
	if l.file != nil {
		return l.readLoopGSO(l.file)
	}
	<-l.attached
	bufs := make([][]byte, l.batch)
	sizes := make([]int, l.batch)
	views := make([]*buffer.View, l.batch)
	fresh := func(i int) {
		views[i] = buffer.NewViewSize(readViewSize)
		bufs[i] = views[i].AsSlice()
	}
	for i := range bufs {
		fresh(i)
	}
	defer func() {
		for _, v := range views {
			v.Release()
		}
	}()
	for {
		n, err := l.dev.Read(bufs, sizes, tunOffset)
		now := time.Now().UnixNano() // one clock read per batch
		if n > 0 {
			l.eni.tunReads.Add(1)
			l.eni.tunPackets.Add(uint64(n))
		}
		for i := 0; i < n; i++ {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			l.eni.captureIn(pkt)
			proto, hlen, ok := l.eni.ingress(pkt, now)
			l.eni.flowIn(pkt, 1, ok)
			if !ok {
				continue // the view is read into again
			}
			l.hints.noteShort(pkt, hlen)
			v := views[i]
			v.CapLength(tunOffset + sizes[i])
			v.TrimFront(tunOffset)
			var payload buffer.Buffer
			if hlen > 0 && hlen < sizes[i] {
				payload = buffer.MakeWithView(buffer.NewViewWithData(pkt[:hlen]))
				v.TrimFront(hlen)
				payload.Append(v)
			} else {
				payload = buffer.MakeWithView(v)
			}
			fresh(i)
			pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
			l.dispatcher.DeliverNetworkPacket(proto, pb)
			pb.DecRef()
		}
		l.processDelivered(n > 1) // a batch of several: bulk
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) {
				return nil // closed, or its TUN deleted (followNamespaces)
			}
			// A frame wireguard's tun could not split (bad virtio header,
			// bad lengths, more segments than a batch) is lost, in whole
			// or in part; count it and keep reading.
			l.eni.dropped(dropMalformed)
		}
	}
}

// WritePackets implements stack.LinkWriter.
func (l *tunLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	return l.writePackets(pkts.AsSlice())
}

// linkQDisc is the NIC's queueing discipline: it hands each packet gVisor
// sends to its link as it comes. gVisor's default one wraps every packet
// in a PacketBufferList for WritePackets, an allocation per packet sent.
type linkQDisc struct{ l *tunLink }

func (q linkQDisc) WritePacket(pkt *stack.PacketBuffer) tcpip.Error {
	one := [1]*stack.PacketBuffer{pkt}
	_, err := q.l.writePackets(one[:])
	return err
}

func (linkQDisc) Close() {}

// writePackets writes packets to the TUN in order, through the ACK holder.
func (l *tunLink) writePackets(all []*stack.PacketBuffer) (int, tcpip.Error) {
	if l.eni.blackholed.Load() {
		return len(all), nil // an outage: the packets vanish
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	_, err := l.write(l.holdAcks(all))
	l.releaseWritten()
	if err != nil {
		return 0, err
	}
	return len(all), nil
}

// write writes packets to the TUN in order. Called under writeMu.
func (l *tunLink) write(all []*stack.PacketBuffer) (int, tcpip.Error) {
	if l.gsoWrite != nil {
		return l.writeGSO(all)
	}
	written := 0
	for len(all) > 0 {
		n := min(len(all), l.batch)
		out := l.wbufs[:0]
		for _, pkt := range all[:n] {
			l.eni.noteSent(pkt)
			b := l.wbufs[len(out)][:tunOffset]
			l.iov = appendViews(l.iov[:0], pkt)
			for _, s := range l.iov {
				b = append(b, s...)
			}
			clear(l.iov)
			out = append(out, b)
		}
		if _, err := l.dev.Write(out, tunOffset); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return written, &tcpip.ErrClosedForSend{}
			}
			// The kernel refused part of the batch (for example the
			// device went down); TCP retransmits what was lost.
		}
		written += n
		all = all[n:]
	}
	return written, nil
}

// appendViews appends pkt's bytes to iov as the views that hold them,
// uncopied: what pkt.AsSlices gives, without the slice it allocates for
// every packet.
func appendViews(iov [][]byte, pkt *stack.PacketBuffer) [][]byte {
	vl, skip := pkt.AsViewList()
	for v := vl.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		iov = append(iov, b[skip:])
		skip = 0
	}
	return iov
}

// processDelivered processes the segments the read loop delivered, in its
// goroutine, once gVisor has let go of the locks it holds while it
// delivers; with bulk, it hands them to gVisor's processors instead
// (stack.go).
func (l *tunLink) processDelivered(bulk bool) {
	switch {
	case l.segments == nil:
	case bulk:
		l.segments.HandQueued()
	default:
		l.segments.ProcessQueued()
	}
}

func (l *tunLink) MTU() uint32                             { return l.mtu }
func (l *tunLink) SetMTU(mtu uint32)                       { l.mtu = mtu }
func (l *tunLink) MaxHeaderLength() uint16                 { return 0 }
func (l *tunLink) LinkAddress() tcpip.LinkAddress          { return "" }
func (l *tunLink) SetLinkAddress(tcpip.LinkAddress)        {}
func (l *tunLink) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (l *tunLink) AddHeader(*stack.PacketBuffer)           {}
func (l *tunLink) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (l *tunLink) Wait()                                   {}
func (l *tunLink) SetOnCloseAction(f func())               { l.onClose = f }

// Capabilities: incoming checksums have been verified by the ingress filter
// (packets written into a TUN by anyone in the consumer VPC are untrusted),
// so gVisor need not verify them again; outgoing ones are computed by
// gVisor, since the consumer's kernel expects complete checksums.
func (l *tunLink) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (l *tunLink) Attach(d stack.NetworkDispatcher) {
	if d == nil || l.dispatcher != nil {
		return
	}
	l.dispatcher = d
	close(l.attached)
}

func (l *tunLink) IsAttached() bool { return l.dispatcher != nil }

// Close closes the TUN once. gVisor's close action may call Close again
// (the NIC closing its endpoint), so it runs after the Once has completed.
func (l *tunLink) Close() {
	first := false
	l.closeOnce.Do(func() {
		first = true
		if l.dev != nil {
			l.dev.Close()
		} else {
			l.file.Close()
		}
		l.writeMu.Lock()
		if l.ackTimer != nil {
			l.ackTimer.Stop()
		}
		for i := range l.held {
			if h := &l.held[i]; h.pkt != nil {
				h.pkt.DecRef()
				*h = heldAck{}
			}
		}
		l.holding = 0
		l.writeMu.Unlock()
	})
	if first && l.onClose != nil {
		l.onClose()
	}
}
