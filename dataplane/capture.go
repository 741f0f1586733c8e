package dataplane

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Packet capture on one ENI: what the forwarder reads from the TUN (every
// frame, before the ingress filter judges it, so drops are seen too) and
// what it writes to it, as raw IP packets (pcap link type 101). Frames go
// whole, as tcpdump shows them on an interface with segmentation offload.
// Off, it costs the data path one atomic load per frame; on, a copy of up
// to the snap length per frame into a bounded queue, which drops (and
// counts) rather than slow the data path.

// captureQueue is how many frames wait for the capture's reader.
const captureQueue = 4096

// DefaultSnapLen is the most bytes of a frame kept, as tcpdump's default.
const DefaultSnapLen = 262144

type capturedFrame struct {
	at   time.Time
	data []byte
	size int // the frame's length before the snap length cut it
}

// capture is one running capture.
type capture struct {
	snap    int
	frames  chan capturedFrame
	dropped atomic.Uint64
	taken   atomic.Uint64
}

func (c *capture) put(parts ...[]byte) {
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	b := make([]byte, 0, min(size, c.snap))
	for _, p := range parts {
		b = append(b, p[:min(len(p), c.snap-len(b))]...)
	}
	select {
	case c.frames <- capturedFrame{at: time.Now(), data: b, size: size}:
		c.taken.Add(1)
	default:
		c.dropped.Add(1)
	}
}

// captures are the captures running on an ENI: nil when none does.
type captures struct {
	mu  sync.Mutex // serialises starts and stops
	all atomic.Pointer[[]*capture]
}

func (cs *captures) start(c *capture) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var next []*capture
	if cur := cs.all.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, c)
	cs.all.Store(&next)
}

func (cs *captures) stop(c *capture) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var next []*capture
	for _, o := range *cs.all.Load() {
		if o != c {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		cs.all.Store(nil)
		return
	}
	cs.all.Store(&next)
}

// captureIn records a frame read from the TUN.
func (e *eniState) captureIn(frame []byte) {
	if cs := e.captures.all.Load(); cs != nil {
		for _, c := range *cs {
			c.put(frame)
		}
	}
}

// captureOut records a packet written to the TUN.
func (e *eniState) captureOut(pkt *stack.PacketBuffer) {
	if cs := e.captures.all.Load(); cs != nil {
		for _, c := range *cs {
			c.put(pkt.AsSlices()...)
		}
	}
}

// serveCapture streams a capture of the ENI named by ?eni= (its id or an
// address) as pcap until the client goes away; ?snaplen= cuts frames.
func (f *Forwarder) serveCapture(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("eni")
	var e *eniState
	for _, s := range f.eniList() {
		if s.id == want || s.cfg.IPv4.IsValid() && s.cfg.IPv4.String() == want || s.cfg.IPv6.IsValid() && s.cfg.IPv6.String() == want {
			e = s
		}
	}
	if e == nil {
		http.Error(w, "no ENI "+want+" on this forwarder", http.StatusNotFound)
		return
	}
	snap := DefaultSnapLen
	if v := r.URL.Query().Get("snaplen"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 64 || n > DefaultSnapLen {
			http.Error(w, "snaplen "+v+": use 64 to 262144", http.StatusBadRequest)
			return
		}
		snap = n
	}
	c := &capture{snap: snap, frames: make(chan capturedFrame, captureQueue)}
	e.captures.start(c)
	defer e.captures.stop(c)
	f.log.Info("capture started", "eni", e.id, "snaplen", snap)
	defer func() {
		f.log.Info("capture stopped", "eni", e.id, "frames", c.taken.Load(), "dropped", c.dropped.Load())
	}()

	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(uint32(snap), layers.LinkTypeRaw); err != nil {
		return
	}
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	flush()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case fr := <-c.frames:
			ci := gopacket.CaptureInfo{Timestamp: fr.at, CaptureLength: len(fr.data), Length: fr.size}
			if err := pw.WritePacket(ci, fr.data); err != nil {
				return
			}
			if len(c.frames) == 0 {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
