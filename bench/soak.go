package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/proxyproto"
	"pvlink.dev/pvlink/snapshot"
)

// The soak: a mixed load through one forwarder that stops by itself, while
// the forwarder's RSS, open descriptors, goroutines and flows are sampled
// every second. It fails if any of them keeps growing after the warm-up,
// if a byte is lost, or if anything fails that should not.

// SoakOptions are `pvlink bench soak`'s settings.
type SoakOptions struct {
	Duration time.Duration
	Log      io.Writer
}

// SoakSample is one second of the forwarder.
type SoakSample struct {
	Seconds    float64 `json:"t"`
	RSS        int64   `json:"rss_bytes"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
	Flows      int     `json:"flows"`
}

// SoakResult is what a soak saw.
type SoakResult struct {
	Duration string       `json:"duration"`
	Samples  []SoakSample `json:"samples"`
	// Operations done, by kind, and the unexpected errors (each is a
	// failure) with the first of each kind.
	Ops        map[string]int64  `json:"operations"`
	Errors     map[string]int64  `json:"unexpected_errors"`
	FirstError map[string]string `json:"first_errors,omitempty"`
	// BytesVerified went through and came back (or were counted by the
	// target) exactly; BytesLost did not.
	BytesVerified int64 `json:"bytes_verified"`
	BytesLost     int64 `json:"bytes_lost"`
	// Growing names what kept growing after the warm-up.
	Growing []string `json:"growing,omitempty"`
	// FlowsAfter is the flow table once the load stopped and idle flows
	// had time to go.
	FlowsAfter int  `json:"flows_after"`
	OK         bool `json:"ok"`
	// The forwarder's own counters at the end, to explain a failure.
	Forwarder *snapshot.Stats       `json:"forwarder_stats,omitempty"`
	ENI       *snapshot.ENICounters `json:"eni_counters,omitempty"`
}

// soakPort is the soak's own target server's port (with a proxy header).
const soakPort = 9200

// The soak's fabric: one AZ, one forwarder, two targets the soak serves
// itself (one of them deregistered and registered again in turns), a 5 s
// idle timeout so idle flows time out during the soak, fast health checks
// and a 2 s deregistration delay.
const soakTopology = `name: NAME
region: us-east-1
availability_zones: [use1-az1]
` + benchVPCs + `target_groups:
  - name: soak
    vpc: provider
    port: 9200
    proxy_protocol_v2: true
    idle_timeout: 5s
    deregistration_delay: 2s
    health_check: {interval: 500ms, timeout: 400ms, healthy_threshold: 2, unhealthy_threshold: 2}
    targets: [{ip: 198.19.1.10, external: true}, {ip: 198.19.1.11, external: true}]
` + benchNLB + `    listeners: [{protocol: TCP, port: 80, target_group: soak}]
` + benchEndpoint

// The soak server's commands: the first byte after the proxy header.
const (
	cmdEcho     = 'E' // echo until EOF
	cmdUpload   = 'U' // read until EOF, answer the count and the SHA-256
	cmdDownload = 'D' // 8 bytes N, 8 bytes seed: send N bytes of the seeded stream
	cmdIdle     = 'I' // nothing: wait for the end
)

// stream is the seeded pseudo-random bytes both ends can make.
func stream(seed uint64, n int64) io.Reader {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return io.LimitReader(readerFunc(func(p []byte) (int, error) {
		for i := 0; i+8 <= len(p); i += 8 {
			binary.LittleEndian.PutUint64(p[i:], r.Uint64())
		}
		for i := len(p) &^ 7; i < len(p); i++ {
			p[i] = byte(r.Uint32())
		}
		return len(p), nil
	}), n)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// soakServe serves one connection of the soak's target.
func soakServe(c net.Conn) {
	defer c.Close()
	if _, err := (proxyproto.Decoder{}).Read(c); err != nil {
		return
	}
	var cmd [1]byte
	if _, err := io.ReadFull(c, cmd[:]); err != nil {
		return
	}
	switch cmd[0] {
	case cmdEcho:
		io.Copy(c, c)
	case cmdUpload:
		h := sha256.New()
		n, _ := io.Copy(h, c)
		var out [8 + 32]byte
		binary.BigEndian.PutUint64(out[:8], uint64(n))
		copy(out[8:], h.Sum(nil))
		c.Write(out[:])
	case cmdDownload:
		var args [16]byte
		if _, err := io.ReadFull(c, args[:]); err != nil {
			return
		}
		io.Copy(c, stream(binary.BigEndian.Uint64(args[8:]), int64(binary.BigEndian.Uint64(args[:8]))))
	case cmdIdle:
		io.Copy(io.Discard, c)
	}
}

type soakRun struct {
	dial  Dialer
	addr  string
	ops   sync.Map // kind -> *atomic.Int64
	errs  sync.Map
	first sync.Map
	ok    atomic.Int64
	lost  atomic.Int64
}

func (s *soakRun) count(m *sync.Map, kind string) {
	v, _ := m.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (s *soakRun) fail(kind string, err error) {
	s.count(&s.errs, kind)
	s.first.LoadOrStore(kind, err.Error())
}

func (s *soakRun) open(ctx context.Context, cmd byte) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.dial(dctx, s.addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{cmd}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// The soak's operations; each returns the bytes it verified.

func (s *soakRun) echo(ctx context.Context, n int) (int64, error) {
	c, err := s.open(ctx, cmdEcho)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	seed := rand.Uint64()
	go io.Copy(c, stream(seed, int64(n)))
	want, _ := io.ReadAll(stream(seed, int64(n)))
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	if !bytes.Equal(got, want) {
		s.lost.Add(int64(n))
		return 0, errors.New("echo differs")
	}
	return int64(n), nil
}

func (s *soakRun) upload(ctx context.Context, n int64) (int64, error) {
	c, err := s.open(ctx, cmdUpload)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	seed := rand.Uint64()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(c, h), stream(seed, n)); err != nil {
		return 0, err
	}
	c.(*net.TCPConn).CloseWrite()
	var out [8 + 32]byte
	if _, err := io.ReadFull(c, out[:]); err != nil {
		return 0, err
	}
	if int64(binary.BigEndian.Uint64(out[:8])) != n || !bytes.Equal(out[8:], h.Sum(nil)) {
		s.lost.Add(n - int64(binary.BigEndian.Uint64(out[:8])))
		return 0, fmt.Errorf("the target counted %d bytes (of %d) or another SHA-256", binary.BigEndian.Uint64(out[:8]), n)
	}
	return n, nil
}

// download reads n bytes at rate bytes a second (0: as fast as it can).
func (s *soakRun) download(ctx context.Context, n int64, rate int) (int64, error) {
	c, err := s.open(ctx, cmdDownload)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(90 * time.Second))
	seed := rand.Uint64()
	var args [16]byte
	binary.BigEndian.PutUint64(args[:8], uint64(n))
	binary.BigEndian.PutUint64(args[8:], seed)
	if _, err := c.Write(args[:]); err != nil {
		return 0, err
	}
	want, got := sha256.New(), sha256.New()
	io.Copy(want, stream(seed, n))
	var r io.Reader = c
	if rate > 0 {
		r = &slowReader{r: c, rate: rate, start: time.Now()}
	}
	m, err := io.Copy(got, r)
	if err != nil || m != n {
		s.lost.Add(n - m)
		return 0, fmt.Errorf("read %d of %d bytes: %v", m, n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		s.lost.Add(n)
		return 0, errors.New("download differs")
	}
	return n, nil
}

type slowReader struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.rate/10 {
		p = p[:s.rate/10]
	}
	ahead := time.Duration(float64(s.n)/float64(s.rate)*float64(time.Second)) - time.Since(s.start)
	if ahead > 0 {
		time.Sleep(ahead)
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

// reset opens a connection, sends a little and ends it with a RST.
func (s *soakRun) reset(ctx context.Context) error {
	c, err := s.open(ctx, cmdEcho)
	if err != nil {
		return err
	}
	c.Write([]byte("soon gone"))
	c.(*net.TCPConn).SetLinger(0)
	return c.Close()
}

// idle opens a connection and leaves it idle past the 5 s idle timeout:
// the next segment must be answered with a RST.
func (s *soakRun) idle(ctx context.Context) error {
	c, err := s.open(ctx, cmdIdle)
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(7 * time.Second):
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("still there?"))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("an idle flow past its timeout answered %v, not a RST", err)
	}
	return nil
}

// Soak runs the soak and tears everything down.
func Soak(ctx context.Context, exe string, o SoakOptions) (*SoakResult, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	prefix := fmt.Sprintf("pvs%d", os.Getpid()%100000)
	s, down, err := upFabric(exe, prefix, soakTopology)
	if err != nil {
		return nil, err
	}
	defer down()
	provider := ctl.NetnsName(prefix, "provider")
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, ip := range []string{"198.19.1.10", "198.19.1.11"} {
		var ln net.Listener
		if err := nsenter.Do(provider, func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(soakPort)))
			return err
		}); err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go soakServe(c)
			}
		}()
	}
	fw := s.Forwarders[0]
	eni := s.Endpoints[0].ENIs[0]
	run := &soakRun{dial: DialFrom(eni.Netns), addr: net.JoinHostPort(eni.IP, "80")}
	// Wait for both targets to be healthy before the load.
	time.Sleep(1500 * time.Millisecond)

	loadCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	// The soak has ended once its deadline has passed, even before the
	// context's timer has fired: in that gap a dial fails at once with an
	// i/o timeout (the poller checks the deadline itself), and a worker
	// that took it for a failure would count hundreds in a millisecond.
	end, _ := loadCtx.Deadline()
	ended := func() bool { return loadCtx.Err() != nil || !time.Now().Before(end) }
	var wg sync.WaitGroup
	loop := func(kind string, workers int, op func(context.Context) (int64, error)) {
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !ended() {
					n, err := op(loadCtx)
					if ended() {
						return // cut by the end of the soak: neither a success nor a failure
					}
					if err != nil {
						run.fail(kind, err)
						continue
					}
					run.count(&run.ops, kind)
					run.ok.Add(n)
				}
			}()
		}
	}
	loop("new_connections", 4, func(ctx context.Context) (int64, error) { return run.echo(ctx, 1+rand.IntN(64<<10)) })
	loop("uploads", 1, func(ctx context.Context) (int64, error) { return run.upload(ctx, 32<<20) })
	loop("downloads", 1, func(ctx context.Context) (int64, error) { return run.download(ctx, 32<<20, 0) })
	loop("slow_readers", 4, func(ctx context.Context) (int64, error) { return run.download(ctx, 1<<20, 256<<10) })
	loop("resets", 1, func(ctx context.Context) (int64, error) {
		time.Sleep(50 * time.Millisecond)
		return 0, run.reset(ctx)
	})
	loop("idle_timeouts", 2, func(ctx context.Context) (int64, error) { return 0, run.idle(ctx) })
	// A target deregistered and registered again, in turns.
	client := ctl.Connect(prefix)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; loadCtx.Err() == nil; i++ {
			verb := "deregister"
			if i%2 == 1 {
				verb = "register"
			}
			if _, err := client.Target(verb, "soak", "198.19.1.11:9200", true); err != nil {
				run.fail("target_"+verb, err)
			} else {
				run.count(&run.ops, "target_"+verb)
			}
			select {
			case <-loadCtx.Done():
			case <-time.After(4 * time.Second):
			}
		}
	}()

	res := &SoakResult{Duration: o.Duration.String(), Ops: map[string]int64{}, Errors: map[string]int64{}, FirstError: map[string]string{}}
	start := time.Now()
	sample := func() {
		var st snapshot.Stats
		if err := ctl.ForwarderJSON(fw, "/stats", &st); err != nil {
			run.fail("stats", err)
			return
		}
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(fw.PID) + "/fd")
		res.Samples = append(res.Samples, SoakSample{Seconds: time.Since(start).Seconds(), RSS: rssBytes(fw.PID), FDs: len(fds), Goroutines: st.Runtime.Goroutines, Flows: st.Flows})
	}
	tick := time.NewTicker(time.Second)
	for loadCtx.Err() == nil {
		sample()
		if n := len(res.Samples); n%30 == 0 {
			l := res.Samples[n-1]
			logf("soak %3.0fs: RSS %.1f MiB, %d fds, %d goroutines, %d flows", l.Seconds, float64(l.RSS)/(1<<20), l.FDs, l.Goroutines, l.Flows)
		}
		select {
		case <-loadCtx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	wg.Wait()
	client.Target("register", "soak", "198.19.1.11:9200", true) // as it was; "already registered" is fine
	// Idle flows go within the idle timeout; then the table is empty.
	time.Sleep(7 * time.Second)
	var st snapshot.Stats
	if err := ctl.ForwarderJSON(fw, "/stats", &st); err == nil {
		res.FlowsAfter = st.Flows
		res.Forwarder = &st
	}
	var counters []snapshot.ENICounters
	if ctl.ForwarderJSON(fw, "/counters", &counters) == nil && len(counters) > 0 {
		res.ENI = &counters[0]
	}
	run.ops.Range(func(k, v any) bool { res.Ops[k.(string)] = v.(*atomic.Int64).Load(); return true })
	run.errs.Range(func(k, v any) bool { res.Errors[k.(string)] = v.(*atomic.Int64).Load(); return true })
	run.first.Range(func(k, v any) bool { res.FirstError[k.(string)] = v.(string); return true })
	res.BytesVerified, res.BytesLost = run.ok.Load(), run.lost.Load()
	res.Growing = growing(res.Samples)
	res.OK = len(res.Errors) == 0 && res.BytesLost == 0 && len(res.Growing) == 0 && res.FlowsAfter == 0
	return res, nil
}

// growing names the figures that kept growing after the warm-up (the first
// fifth): the last third's lowest value above the middle third's highest,
// and above it by more than noise (5% and a small absolute margin).
func growing(samples []SoakSample) []string {
	if len(samples) < 15 {
		return nil
	}
	after := samples[len(samples)/5:]
	third := len(after) / 3
	mid, last := after[third:2*third], after[2*third:]
	var out []string
	for _, f := range []struct {
		name   string
		get    func(SoakSample) float64
		margin float64
	}{
		{"rss", func(s SoakSample) float64 { return float64(s.RSS) }, 4 << 20},
		{"fds", func(s SoakSample) float64 { return float64(s.FDs) }, 16},
		{"goroutines", func(s SoakSample) float64 { return float64(s.Goroutines) }, 16},
	} {
		var midMax, lastMin float64
		for i, s := range mid {
			if v := f.get(s); i == 0 || v > midMax {
				midMax = v
			}
		}
		for i, s := range last {
			if v := f.get(s); i == 0 || v < lastMin {
				lastMin = v
			}
		}
		if lastMin > midMax*1.05 && lastMin-midMax > f.margin {
			out = append(out, fmt.Sprintf("%s (%.0f at most in the middle third, %.0f at least in the last)", f.name, midMax, lastMin))
		}
	}
	slices.Sort(out)
	return out
}

// Summary is a soak for people.
func (r *SoakResult) Summary() string {
	var b strings.Builder
	first, last := r.Samples[0], r.Samples[len(r.Samples)-1]
	fmt.Fprintf(&b, "soak %s: %d samples; RSS %.1f -> %.1f MiB, fds %d -> %d, goroutines %d -> %d, flows %d -> %d (after: %d)\n",
		r.Duration, len(r.Samples), float64(first.RSS)/(1<<20), float64(last.RSS)/(1<<20), first.FDs, last.FDs, first.Goroutines, last.Goroutines, first.Flows, last.Flows, r.FlowsAfter)
	var kinds []string
	for k := range r.Ops {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-16s %d\n", k, r.Ops[k])
	}
	fmt.Fprintf(&b, "bytes verified %d, lost %d; unexpected errors %v\n", r.BytesVerified, r.BytesLost, r.Errors)
	for k, e := range r.FirstError {
		fmt.Fprintf(&b, "  first %s error: %s\n", k, e)
	}
	if len(r.Growing) > 0 {
		fmt.Fprintf(&b, "kept growing: %s\n", strings.Join(r.Growing, "; "))
	}
	if f := r.Forwarder; f != nil && !r.OK {
		// Where refused or unanswered connections went, for a failed soak.
		fmt.Fprintf(&b, "forwarder: refused no_listener %d, not_available %d, no_target %d, no_route %d, target_connect_failed %d, netstack %d; netstack %v\n",
			f.NoListener, f.NotAvailable, f.NoTarget, f.NoRoute, f.DialErrors, f.EndpointErrors, f.Netstack)
	}
	if e := r.ENI; e != nil && !r.OK {
		fmt.Fprintf(&b, "ENI: %d packets dropped, %d RSTs received\n", e.PacketsDropped, e.RstPacketsReceived)
	}
	return b.String()
}
