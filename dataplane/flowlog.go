package dataplane

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"pvlink.dev/pvlink/snapshot"
)

// VPC Flow Logs of an ENI: the forwarder counts the packets and bytes of
// each flow direction the ENI accepted or rejected (the ingress filter's
// drops: security group, oversize, not available, ...) over an
// aggregation interval, then turns them into records that ctld collects
// (GET /flowlogs) and writes to each flow log's destination. Off (the
// snapshot gives the ENI no interval), the data path pays one atomic load
// per frame.

// flowLogRing bounds the records a forwarder keeps for ctld to collect.
const flowLogRing = 1 << 16

// flowLogKey is a flow log record's flow: its connection and the verdict.
type flowLogKey struct {
	connKey
	accept bool
}

type flowLogCount struct {
	packets, bytes uint64
	first, last    int64 // unix seconds
}

// flowLogger aggregates one ENI's traffic over an interval.
type flowLogger struct {
	interval time.Duration
	mu       sync.Mutex
	start    time.Time
	flows    map[flowLogKey]*flowLogCount
}

func newFlowLogger(interval time.Duration) *flowLogger {
	return &flowLogger{interval: interval, start: time.Now(), flows: map[flowLogKey]*flowLogCount{}}
}

// note counts a frame of segs packets (a segmentation-offload frame stands
// for several, each with its own headers).
func (l *flowLogger) note(frame []byte, size, segs int, accept bool) {
	k, hlen, ok := flowKeyOf(frame)
	if !ok {
		return // not IP enough to name a flow
	}
	k.accept = accept
	segs = max(segs, 1)
	bytes := uint64(size + (segs-1)*hlen)
	now := time.Now().Unix()
	l.mu.Lock()
	c := l.flows[k]
	if c == nil {
		c = &flowLogCount{first: now}
		l.flows[k] = c
	}
	c.packets += uint64(segs)
	c.bytes += bytes
	c.last = now
	l.mu.Unlock()
}

// flowKeyOf reads a packet's addresses, protocol and ports, and the length
// of its IP and transport headers.
func flowKeyOf(b []byte) (flowLogKey, int, bool) {
	k, transport, ok := splitPacket(b)
	if !ok {
		return flowLogKey{}, 0, false
	}
	hlen := len(b) - len(transport)
	switch k.proto {
	case uint8(header.TCPProtocolNumber):
		if len(transport) >= header.TCPMinimumSize {
			hlen += min(int(header.TCP(transport).DataOffset()), len(transport))
		}
	case uint8(header.UDPProtocolNumber):
		if len(transport) >= header.UDPMinimumSize {
			hlen += header.UDPMinimumSize
		}
	}
	return flowLogKey{connKey: k}, hlen, true
}

// flowIn counts a frame read from the consumer, accepted or not.
func (e *eniState) flowIn(frame []byte, segs int, accept bool) {
	if l := e.flowLog.Load(); l != nil {
		l.note(frame, len(frame), segs, accept)
	}
}

// flowOut counts a packet written to the consumer.
func (e *eniState) flowOut(pkt *stack.PacketBuffer) {
	l := e.flowLog.Load()
	if l == nil {
		return
	}
	segs := 1
	if g := pkt.GSOOptions; (g.Type == stack.GSOTCPv4 || g.Type == stack.GSOTCPv6) && g.MSS > 0 && pkt.Data().Size() > int(g.MSS) {
		segs = (pkt.Data().Size() + int(g.MSS) - 1) / int(g.MSS)
	}
	// The headers and the start of the payload suffice to name the flow;
	// the length is the packet's.
	hdr := pkt.NetworkHeader().Slice()
	th := pkt.TransportHeader().Slice()
	var b [128]byte
	n := copy(b[:], hdr)
	n += copy(b[n:], th)
	l.note(b[:n], pkt.Size(), segs, true)
}

// flowLogs is a forwarder's records waiting for ctld.
type flowLogs struct {
	boot    int64 // tells ctld a restarted forwarder from the one it read
	mu      sync.Mutex
	seq     uint64 // the last record's
	records []snapshot.FlowLogRecord
	lost    atomic.Uint64 // records pushed out of the ring unread
}

// flush turns the traffic of every ENI whose interval is over into
// records.
func (f *Forwarder) flushFlowLogs(now time.Time, force bool) {
	for _, e := range f.eniList() {
		l := e.flowLog.Load()
		if l == nil {
			continue
		}
		l.mu.Lock()
		if !force && now.Sub(l.start) < l.interval {
			l.mu.Unlock()
			continue
		}
		flows := l.flows
		l.flows, l.start = map[flowLogKey]*flowLogCount{}, now
		l.mu.Unlock()
		f.emitFlowLogs(e, flows)
	}
}

func (f *Forwarder) emitFlowLogs(e *eniState, flows map[flowLogKey]*flowLogCount) {
	if len(flows) == 0 {
		return
	}
	fl := &f.flowRecords
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for k, c := range flows {
		action := "REJECT"
		if k.accept {
			action = "ACCEPT"
		}
		fl.seq++
		fl.records = append(fl.records, snapshot.FlowLogRecord{
			Seq: fl.seq, ENI: e.id, Src: k.src.String(), Dst: k.dst.String(), SrcPort: k.sport, DstPort: k.dport,
			Protocol: k.proto, Packets: c.packets, Bytes: c.bytes, Start: c.first, End: c.last, Action: action,
		})
	}
	if over := len(fl.records) - flowLogRing; over > 0 {
		fl.lost.Add(uint64(over))
		fl.records = append(fl.records[:0], fl.records[over:]...)
	}
}

// runFlowLogs flushes finished intervals every second.
func (f *Forwarder) runFlowLogs() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case now := <-t.C:
			f.flushFlowLogs(now, false)
		}
	}
}

// setFlowLog turns an ENI's flow logging on (interval > 0) or off; what
// the old interval had gathered is emitted first.
func (f *Forwarder) setFlowLog(e *eniState, interval time.Duration) {
	old := e.flowLog.Load()
	if old != nil && old.interval == interval {
		return
	}
	if interval > 0 {
		e.flowLog.Store(newFlowLogger(interval))
	} else {
		e.flowLog.Store(nil)
	}
	if old != nil {
		old.mu.Lock()
		flows := old.flows
		old.flows = map[flowLogKey]*flowLogCount{}
		old.mu.Unlock()
		f.emitFlowLogs(e, flows)
	}
}

// serveFlowLogs gives the records after ?after=SEQ.
func (f *Forwarder) serveFlowLogs(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	fl := &f.flowRecords
	fl.mu.Lock()
	out := snapshot.FlowLogBatch{Boot: fl.boot, Last: fl.seq, Lost: fl.lost.Load(), Records: []snapshot.FlowLogRecord{}}
	for _, rec := range fl.records {
		if rec.Seq > after {
			out.Records = append(out.Records, rec)
		}
	}
	fl.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
