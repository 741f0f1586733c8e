package dataplane

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// gVisor acknowledges every segment it has processed at once: the
// consumer's request gets a pure ACK, written to the TUN before the relay
// has even read the request, and its FIN gets one before the target has
// closed. Linux delays such ACKs so that the answer (or the FIN) carries
// them; gVisor stores the QuickAck option but never reads it. The link does
// the delaying instead: a pure ACK is held for at most ackHoldData (the ACK
// of a request) or ackHoldFin (of a FIN), each on a deadline of its own, and
// dropped if a segment of the same connection that carries data or a FIN,
// and acknowledges at least as much, goes out first. That takes one TUN
// write (and the consumer kernel's handling of one packet) off the
// critical path of every request/response exchange, and two off every
// short connection.
//
// Only the ACK of a short segment is held, as Linux delays only those: the
// read loop notes each consumer segment shorter than a full one (or a FIN)
// as a hint, and a pure ACK that acknowledges exactly up to the end of
// such a segment may be held. ACKs of full segments and of the consumer's
// GSO frames (uploads) go out at once.
//
// What is never held or dropped, so that the consumer's TCP sees what it
// relies on:
//   - an ACK with SACK blocks (a duplicate ACK during loss repair) or with
//     any flag besides ACK;
//   - the second of two pure ACKs in a row of one connection: it goes out
//     at once, and a held one it supersedes (it acknowledges more) is
//     dropped, as Linux acknowledges every second full segment; one that
//     acknowledges the same (a window update, a duplicate) goes out after
//     the held one.
//
// Every other packet of a connection with a held ACK goes out after it.
const (
	// ackHoldData bounds how long the ACK of a short request waits for the
	// answer to ride on. The first request of a connection waits for the
	// target's handshake too. A consumer that sends a second short segment
	// before the answer, with Nagle on, waits as long for this ACK (Linux
	// would make it wait 40 ms or more, as it delays ACKs that long).
	ackHoldData = 1 * time.Millisecond
	// ackHoldFin bounds how long the ACK of the consumer's FIN waits for
	// the forwarder's FIN, which comes once the target has closed too. A
	// consumer waits for nothing from that ACK (it retransmits its FIN
	// only after 200 ms), and Linux holds it as long as any delayed ACK.
	ackHoldFin = 10 * time.Millisecond
	// ackHoldSlots bounds the connections of one ENI with an ACK held at
	// once; a pure ACK that finds no free slot goes out at once.
	ackHoldSlots = 64
	// ackHints is how many short consumer segments the link remembers.
	ackHints = 64
	// shortSegment is a full segment's payload at MSS 8460: only the ACK
	// of a shorter segment may wait.
	shortSegment = endpointMTU - 40
)

// ackHint is a short consumer segment: the ACK that acknowledges exactly
// up to its end may be held.
type ackHint struct {
	key connKey // as the ACK will carry it (the segment's reversed)
	ack uint32
	fin bool
}

// ackHintSet is the read loop's notes for the write path.
type ackHintSet struct {
	mu    sync.Mutex
	hints [ackHints]ackHint
	next  int
}

// noteShort records a consumer TCP segment that passed the ingress filter
// (pkt, its IP and TCP headers hlen bytes) if it is short or a FIN.
func (h *ackHintSet) noteShort(pkt []byte, hlen int) {
	payload := len(pkt) - hlen
	if payload >= shortSegment {
		return
	}
	k, th, ok := splitPacket(pkt)
	if !ok || k.proto != uint8(header.TCPProtocolNumber) || len(th) < header.TCPMinimumSize {
		return
	}
	tcp := header.TCP(th)
	flags := tcp.Flags()
	if flags&(header.TCPFlagSyn|header.TCPFlagRst) != 0 {
		return
	}
	end := tcp.SequenceNumber() + uint32(payload)
	fin := flags&header.TCPFlagFin != 0
	if fin {
		end++
	} else if payload == 0 {
		return // a pure ACK of the consumer's: gVisor answers none
	}
	h.mu.Lock()
	h.hints[h.next] = ackHint{key: k.reversed(), ack: end, fin: fin}
	h.next = (h.next + 1) % ackHints
	h.mu.Unlock()
}

// take reports for how long an ACK of key's connection up to ack may be
// held: 0 unless it acknowledges exactly a noted short segment (whose
// note it forgets), longer for a FIN than for a request.
func (h *ackHintSet) take(key *connKey, ack uint32) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.hints {
		if x := &h.hints[i]; x.ack == ack && x.key == *key {
			fin := x.fin
			*x = ackHint{}
			if fin {
				return ackHoldFin
			}
			return ackHoldData
		}
	}
	return 0
}

// heldAck is one held pure ACK and what identifies its connection.
type heldAck struct {
	pkt   *stack.PacketBuffer // nil: the slot is free
	key   connKey
	ack   uint32
	until time.Duration // on monoNow's clock: when it goes out regardless
}

// tcpSegment is what the holder reads of an outgoing packet.
type tcpSegment struct {
	key     connKey
	ack     uint32
	flags   header.TCPFlags
	payload int
	sack    bool
}

// parseSegment reads pkt's connection, flags and ack; ok is false for
// anything but TCP.
func parseSegment(pkt *stack.PacketBuffer) (s tcpSegment, ok bool) {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return s, false
	}
	th := header.TCP(pkt.TransportHeader().Slice())
	k, _, ok := splitPacket(pkt.NetworkHeader().Slice())
	if !ok || len(th) < header.TCPMinimumSize {
		return s, false
	}
	k.sport, k.dport = th.SourcePort(), th.DestinationPort()
	s.key = k
	s.ack = th.AckNumber()
	s.flags = th.Flags()
	s.payload = pkt.Data().Size()
	s.sack = hasSACK(th)
	return s, true
}

// maybePureAck is a cheap first look: whether pkt might be a pure ACK.
func maybePureAck(pkt *stack.PacketBuffer) bool {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber || pkt.Data().Size() != 0 {
		return false
	}
	th := header.TCP(pkt.TransportHeader().Slice())
	return len(th) >= header.TCPMinimumSize && th.Flags() == header.TCPFlagAck
}

// hasSACK reports whether a TCP header's options carry SACK blocks.
func hasSACK(th header.TCP) bool {
	end := int(th.DataOffset())
	if end > len(th) {
		end = len(th)
	}
	for i := header.TCPMinimumSize; i < end; {
		switch kind := th[i]; kind {
		case header.TCPOptionEOL:
			return false
		case header.TCPOptionNOP:
			i++
		case header.TCPOptionSACK:
			return true
		default:
			if i+1 >= end || th[i+1] < 2 {
				return false
			}
			i += int(th[i+1])
		}
	}
	return false
}

// pureAck reports whether s is an ACK the holder may hold.
func (s *tcpSegment) pureAck() bool {
	return s.flags == header.TCPFlagAck && s.payload == 0 && !s.sack
}

// carries reports whether s, sent after held, makes held redundant: it
// carries data or a FIN and acknowledges at least as much.
func (s *tcpSegment) carries(held *heldAck) bool {
	if s.flags&(header.TCPFlagRst|header.TCPFlagSyn) != 0 || s.flags&header.TCPFlagAck == 0 {
		return false
	}
	return (s.payload > 0 || s.flags&header.TCPFlagFin != 0) && !seqBefore(s.ack, held.ack)
}

// seqBefore reports a < b in sequence space.
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// holdAcks sorts pkts (gVisor's, in order) into what goes out now, in
// order, appended to l.out: held ACKs they release, and the packets not
// held. Packets it holds get a reference of the holder's; held ACKs made
// redundant lose it. Called under writeMu.
func (l *tunLink) holdAcks(pkts []*stack.PacketBuffer) []*stack.PacketBuffer {
	out := l.out[:0]
	for _, pkt := range pkts {
		if l.holding == 0 && !maybePureAck(pkt) {
			out = append(out, pkt) // nothing held, nothing to hold
			continue
		}
		s, ok := parseSegment(pkt)
		if !ok {
			out = append(out, pkt)
			continue
		}
		h := l.heldFor(&s.key)
		if h != nil {
			switch {
			case s.pureAck() && seqBefore(h.ack, s.ack), s.carries(h):
				// The held ACK is redundant: pkt acknowledges more
				// (the second of two in a row goes out at once), or
				// carries data or a FIN with the same ack.
				l.dropHeld(h)
			default:
				out = append(out, h.pkt)
				l.released = append(l.released, h.pkt)
				l.unhold(h)
			}
			out = append(out, pkt)
			continue
		}
		if s.pureAck() {
			if hold := l.hints.take(&s.key, s.ack); hold > 0 {
				if free := l.freeSlot(); free != nil {
					pkt.IncRef()
					until := monoNow() + hold
					*free = heldAck{pkt: pkt, key: s.key, ack: s.ack, until: until}
					l.holding++
					l.armAckTimer(until)
					continue
				}
			}
		}
		out = append(out, pkt)
	}
	l.out = out
	return out
}

// heldFor returns the slot holding an ACK of key's connection, or nil.
func (l *tunLink) heldFor(key *connKey) *heldAck {
	seen := 0
	for i := range l.held {
		if seen == l.holding {
			break
		}
		if h := &l.held[i]; h.pkt != nil {
			if h.key == *key {
				return h
			}
			seen++
		}
	}
	return nil
}

func (l *tunLink) freeSlot() *heldAck {
	if l.holding == len(l.held) {
		return nil
	}
	for i := range l.held {
		if l.held[i].pkt == nil {
			return &l.held[i]
		}
	}
	return nil
}

func (l *tunLink) dropHeld(h *heldAck) {
	h.pkt.DecRef()
	l.unhold(h)
	l.eni.acksCarried.Add(1)
}

// unhold frees h's slot. The last held ACK to leave stops the timer: left
// armed, it would fire for nothing, a wake-up of an idle forwarder per
// request/response exchange (the answer carries the request's ACK well
// before its deadline).
func (l *tunLink) unhold(h *heldAck) {
	*h = heldAck{}
	l.holding--
	if l.holding == 0 && l.ackTimerArmed {
		l.ackTimer.Stop()
		l.ackTimerArmed = false
	}
}

// monoStart is the origin of monoNow.
var monoStart = time.Now()

// monoNow is the monotonic clock the holder's deadlines are on.
func monoNow() time.Duration { return time.Since(monoStart) }

// armAckTimer makes sure the timer fires by until.
func (l *tunLink) armAckTimer(until time.Duration) {
	if l.ackTimerArmed && l.ackTimerAt <= until {
		return
	}
	l.ackTimerArmed = true
	l.ackTimerAt = until
	d := until - monoNow()
	if l.ackTimer == nil {
		l.ackTimer = time.AfterFunc(d, l.flushHeldAcks)
		return
	}
	l.ackTimer.Reset(d)
}

// ackFlushSlack lets a timer that fires take along the ACKs due just
// after it: one write instead of a timer and a write each.
const ackFlushSlack = 50 * time.Microsecond

// flushHeldAcks writes the held ACKs that are due: nothing came to carry
// them. The others wait on, the timer armed for the first of them.
func (l *tunLink) flushHeldAcks() {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.ackTimerArmed = false
	if l.holding == 0 {
		return
	}
	now := monoNow()
	out := l.out[:0]
	var next time.Duration
	for i := range l.held {
		h := &l.held[i]
		switch {
		case h.pkt == nil:
		case h.until <= now+ackFlushSlack:
			out = append(out, h.pkt)
			l.released = append(l.released, h.pkt)
			*h = heldAck{}
			l.holding--
		case next == 0 || h.until < next:
			next = h.until
		}
	}
	l.out = out
	if len(out) > 0 && !l.eni.blackholed.Load() {
		l.write(out)
	}
	l.releaseWritten()
	if next != 0 {
		l.armAckTimer(next)
	}
}

// releaseWritten drops the holder's references to held ACKs just written.
func (l *tunLink) releaseWritten() {
	for i, p := range l.released {
		p.DecRef()
		l.released[i] = nil
	}
	l.released = l.released[:0]
	clear(l.out)
}
