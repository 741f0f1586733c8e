package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/proxyproto"
)

// Dialer opens a connection from inside a namespace.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// DialFrom returns a Dialer for a namespace ("" for the current one). Its
// connections give up after 5 s.
func DialFrom(ns string) Dialer {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return nsenter.DialTCP(ctx, ns, addr)
	}
}

// Servers are the benchmark's targets in one namespace: a sink (reads and
// discards, for upload throughput), a source (once the client's first byte
// is in, writes until the connection ends, for download throughput) and a
// request/response server (one byte back for each byte read), each with and
// without a leading proxy protocol header to skip.
type Servers struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

// Ports of the benchmark servers.
const (
	SinkPort     = 9000
	RRPort       = 9001
	SourcePort   = 9002
	SinkPPPort   = 9100
	RRPPPort     = 9101
	SourcePPPort = 9102
	benchBufSize = 256 << 10
)

// What a benchmark server does with a connection.
type serverMode int

const (
	sinkMode serverMode = iota
	rrMode
	sourceMode
)

// StartServers listens on ip's six benchmark ports inside ns.
func StartServers(ns, ip string) (*Servers, error) {
	s := &Servers{}
	for _, p := range []struct {
		port int
		mode serverMode
		pp   bool
	}{
		{SinkPort, sinkMode, false}, {RRPort, rrMode, false}, {SourcePort, sourceMode, false},
		{SinkPPPort, sinkMode, true}, {RRPPPort, rrMode, true}, {SourcePPPort, sourceMode, true},
	} {
		var ln net.Listener
		err := nsenter.Do(ns, func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p.port)))
			return err
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.lns = append(s.lns, ln)
		s.wg.Add(1)
		go s.serve(ln, p.mode, p.pp)
	}
	return s, nil
}

func (s *Servers) serve(ln net.Listener, mode serverMode, pp bool) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			if pp {
				if _, err := (proxyproto.Decoder{}).Read(c); err != nil {
					return
				}
			}
			switch mode {
			case sinkMode:
				buf := make([]byte, benchBufSize)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			case sourceMode:
				// The client's first byte (which also brings the proxy
				// header) starts it; it stops when the client closes.
				// What the client sends meanwhile is read and dropped, so
				// that a stream can run both ways (Bidirectional).
				buf := make([]byte, benchBufSize)
				if _, err := io.ReadFull(c, buf[:1]); err != nil {
					return
				}
				go io.CopyBuffer(io.Discard, c, make([]byte, benchBufSize))
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}
			var b [1]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		}()
	}
}

// Close stops the servers.
func (s *Servers) Close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

// Throughput sends from streams connections at once for d and returns
// Gbit/s of payload delivered into the sink, and the bytes.
func Throughput(ctx context.Context, dial Dialer, addr string, streams int, d time.Duration) (float64, int64, error) {
	return bulk(ctx, dial, addr, streams, d, nil, func(c net.Conn, b []byte) (int, error) { return c.Write(b) })
}

// Download reads from streams connections to a source at once for d and
// returns Gbit/s of payload delivered out of it, and the bytes. Each
// connection's first byte starts its source.
func Download(ctx context.Context, dial Dialer, addr string, streams int, d time.Duration) (float64, int64, error) {
	start := func(c net.Conn) error { _, err := c.Write([]byte{1}); return err }
	return bulk(ctx, dial, addr, streams, d, start, func(c net.Conn, b []byte) (int, error) { return c.Read(b) })
}

// Bidirectional sends to and reads from streams connections to a source
// at once for d and returns Gbit/s of payload moved, both ways together,
// and the bytes.
func Bidirectional(ctx context.Context, dial Dialer, addr string, streams int, d time.Duration) (float64, int64, error) {
	start := func(c net.Conn) error { _, err := c.Write([]byte{1}); return err }
	// Each connection's reading half runs beside bulk's writing one.
	var read atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	readAlong := func(c net.Conn) error {
		if err := start(c); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, benchBufSize)
			for time.Now().Before(deadline) {
				n, err := c.Read(buf)
				read.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		return nil
	}
	_, wrote, err := bulk(ctx, dial, addr, streams, d, readAlong, func(c net.Conn, b []byte) (int, error) { return c.Write(b) })
	wg.Wait()
	if err != nil {
		return 0, 0, err
	}
	total := wrote + read.Load()
	return float64(total) * 8 / d.Seconds() / 1e9, total, nil
}

// bulk opens streams connections (running start on each, if given), then
// moves bytes on all of them at once with move until d has passed.
func bulk(ctx context.Context, dial Dialer, addr string, streams int, d time.Duration, start func(net.Conn) error, move func(net.Conn, []byte) (int, error)) (float64, int64, error) {
	conns := make([]net.Conn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < streams; i++ {
		c, err := dial(ctx, addr)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, c)
		if start != nil {
			if err := start(c); err != nil {
				return 0, 0, err
			}
		}
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			buf := make([]byte, benchBufSize)
			c.SetDeadline(deadline)
			for time.Now().Before(deadline) {
				n, err := move(c, buf)
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		}(c)
	}
	wg.Wait()
	secs := time.Since(begin).Seconds()
	return float64(total.Load()) * 8 / secs / 1e9, total.Load(), nil
}

// ConnRate opens connections from workers at once, each sending one byte
// and reading one back before closing, until count connections or d have
// passed. It returns connections per second, how many completed and how
// many failed.
func ConnRate(ctx context.Context, dial Dialer, addr string, workers, count int, d time.Duration) (cps float64, done, failed int64, err error) {
	var ok, bad atomic.Int64
	var issued atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for issued.Add(1) <= int64(count) && time.Now().Before(deadline) {
				c, err := dial(ctx, addr)
				if err != nil {
					bad.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Write([]byte{'x'})
				if err == nil {
					_, err = io.ReadFull(c, b[:])
				}
				c.Close()
				if err != nil {
					bad.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() == 0 {
		return 0, 0, bad.Load(), errors.New("no connection completed")
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), ok.Load(), bad.Load(), nil
}

// Latency sends one byte and waits for one back, rate times a second over
// one connection for d, and returns the round-trip percentiles in µs.
// The requests are paced by a timerfd, which wakes the loop on time to the
// microsecond: Go's own timers sleep in whole milliseconds when the process
// is idle, which turned a rate of 2000 into bursts (one request after a
// millisecond's sleep, the next at once), so that half the samples found
// every process on the path awake and half found them asleep. A request
// whose tick came while the previous one was still out waits for the next
// tick rather than going out back to back.
func Latency(ctx context.Context, dial Dialer, addr string, rate int, d time.Duration) (p50, p99, p999 float64, err error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	tick, err := newTicker(time.Second / time.Duration(rate))
	if err != nil {
		return 0, 0, 0, err
	}
	defer tick.Close()
	var samples []float64
	var b [1]byte
	end := time.Now().Add(d)
	c.SetDeadline(end.Add(5 * time.Second))
	tick.SetReadDeadline(end.Add(5 * time.Second))
	var expirations [8]byte
	for time.Now().Before(end) {
		if _, err := io.ReadFull(tick, expirations[:]); err != nil {
			return 0, 0, 0, err
		}
		t0 := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			return 0, 0, 0, err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, 0, 0, err
		}
		samples = append(samples, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	if len(samples) == 0 {
		return 0, 0, 0, errors.New("no request completed")
	}
	sort.Float64s(samples)
	q := func(p float64) float64 { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	return q(0.50), q(0.99), q(0.999), nil
}

// newTicker is a timerfd that expires every interval, read through the
// runtime's poller: each 8-byte read waits for the next expiry.
func newTicker(interval time.Duration) (*os.File, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	ts := unix.NsecToTimespec(int64(interval))
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "latency ticker"), nil
}
