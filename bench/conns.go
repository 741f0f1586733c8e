package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// ConnsResult is what `pvlink bench conns` measured.
type ConnsResult struct {
	Requested  int     `json:"requested"`
	Open       int     `json:"established"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	RSSBefore  int64   `json:"rss_before_bytes"`
	RSSAfter   int64   `json:"rss_after_bytes"`
	PerConn    float64 `json:"rss_per_connection_bytes"`
	Seconds    float64 `json:"seconds_to_open"`
	FDLimit    uint64  `json:"fd_limit"`
	// The forwarder of the AZ: its processes (workers), how many
	// connections each held, and the client and target processes used.
	Workers       int   `json:"forwarder_workers"`
	ForwarderPIDs []int `json:"forwarder_pids"`
	PerWorker     []int `json:"connections_per_worker"`
	Clients       int   `json:"client_processes"`
	Targets       int   `json:"targets"`
	// Where the RSS went, per connection, from the forwarders' runtime.
	HeapPerConn       float64 `json:"heap_per_connection_bytes"`
	StackPerConn      float64 `json:"stack_per_connection_bytes"`
	GoroutinesPerConn float64 `json:"goroutines_per_connection"`
}

// FDLimit is this process's open-file limit (soft, as Go raised it, and
// hard). A forwarder needs one descriptor per provider-side connection.
func FDLimit() (soft, hard uint64) {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur, l.Max
}

// fdReserve is what a process keeps for everything but the connections.
const fdReserve = 1024

// ConnsPlan is how Conns spreads count connections over processes, none of
// which may hold more descriptors than the hard limit: forwarder workers
// (with room for the kernel's uneven spread of flows over TUN queues),
// client processes and target processes.
func ConnsPlan(count int, hard uint64) (workers, clients, targets int, err error) {
	per := int(hard) - fdReserve
	if per < 1000 {
		return 0, 0, 0, fmt.Errorf("the hard RLIMIT_NOFILE is %d: too low for this benchmark", hard)
	}
	div := func(n int) int { return max(1, (n+per-1)/per) }
	workers = div(count * 5 / 4)
	if workers > snapshot.MaxWorkers {
		return 0, 0, 0, fmt.Errorf("%d connections need %d forwarder workers at %d open files each (hard RLIMIT_NOFILE %d); at most %d",
			count, workers, per, hard, snapshot.MaxWorkers)
	}
	return workers, div(count), div(count * 5 / 4), nil
}

// connsTopology is one AZ, an endpoint on port 80 in front of an NLB whose
// target group (proxy protocol v2) has TARGETS, served by WORKERS forwarder
// processes.
const connsTopology = `name: NAME
region: us-east-1
availability_zones: [use1-az1]
forwarder_workers: WORKERS
` + benchVPCs + `target_groups:
  - {name: hold, vpc: provider, port: 9100, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [TARGETS]}
` + benchNLB + `    listeners: [{protocol: TCP, port: 80, target_group: hold}]
` + benchEndpoint

// Conns opens count idle connections through the forwarder of one AZ (each
// with its proxy header, then silent) and reports the forwarder's RSS per
// connection. A process may hold no more descriptors than the hard
// RLIMIT_NOFILE, so the forwarder runs as several workers when count needs
// it, and the connections are held by client processes (`pvlink bench
// hold`) and served by several targets. Everything it made is removed
// before it returns.
func Conns(ctx context.Context, exe string, count int, log io.Writer) (*ConnsResult, error) {
	_, hard := FDLimit()
	workers, clients, ntargets, err := ConnsPlan(count, hard)
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("pvc%d", syscall.Getpid()%100000)
	targets := make([]string, ntargets)
	for i := range targets {
		targets[i] = fmt.Sprintf("{ip: 198.19.1.%d}", 10+i)
	}
	topo := strings.NewReplacer("WORKERS", fmt.Sprint(workers), "TARGETS", strings.Join(targets, ", ")).Replace(connsTopology)
	s, down, err := upFabric(exe, prefix, topo)
	if err != nil {
		return nil, err
	}
	defer down()
	eni := s.Endpoints[0].ENIs[0]
	// One consumer address holds every connection to one ENI port: it
	// needs more source ports than the default range.
	if err := nsenter.Sysctls(eni.Netns, map[string]string{"net/ipv4/ip_local_port_range": "1024 65535"}); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(eni.IP, "80")
	if log != nil {
		fmt.Fprintf(log, "%d connections: %d forwarder workers, %d client processes, %d targets (hard RLIMIT_NOFILE %d)\n", count, workers, clients, ntargets, hard)
	}

	// Warm the forwarders up so the baseline includes the runtime's steady
	// state, not start-up.
	dial := DialFrom(eni.Netns)
	for i := 0; i < 100*workers; i++ {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		c.Write([]byte{0})
		c.Close()
	}
	time.Sleep(500 * time.Millisecond)
	res := &ConnsResult{Requested: count, FDLimit: hard, Workers: workers, Clients: clients, Targets: ntargets}
	for _, f := range s.Forwarders {
		res.ForwarderPIDs = append(res.ForwarderPIDs, f.PID)
	}
	res.RSSBefore = sumRSS(res.ForwarderPIDs)
	before, _, err := workerStats(s.Forwarders)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for i := 0; i < clients; i++ {
		n := count / clients
		if i < count%clients {
			n++
		}
		h, err := startHolder(exe, eni.Netns, addr, n)
		if err != nil {
			return nil, err
		}
		holders = append(holders, h)
	}
	for _, h := range holders {
		r, err := h.wait(ctx)
		if err != nil {
			return nil, err
		}
		res.Open += r.Open
		res.Failed += r.Failed
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Failed > 0 && log != nil {
		explain(log, s)
	}
	time.Sleep(time.Second) // let the forwarders settle
	res.RSSAfter = sumRSS(res.ForwarderPIDs)
	after, flows, err := workerStats(s.Forwarders)
	if err != nil {
		return nil, err
	}
	res.PerWorker = flows
	if n := float64(res.Open); n > 0 {
		res.PerConn = float64(res.RSSAfter-res.RSSBefore) / n
		res.HeapPerConn = float64(int64(after.HeapInuseBytes)-int64(before.HeapInuseBytes)) / n
		res.StackPerConn = float64(int64(after.StackBytes)-int64(before.StackBytes)) / n
		res.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / n
	}
	if log != nil {
		fmt.Fprintf(log, "%d of %d connections open through the forwarder of %s (%d workers, pids %v, flows per worker %v) in %.1fs; RSS %d MiB -> %d MiB (%.1f KiB per connection: Go heap %.1f KiB, goroutine stacks %.1f KiB, %.2f goroutines)\n",
			res.Open, count, eni.AZ, workers, res.ForwarderPIDs, res.PerWorker, res.Seconds, res.RSSBefore>>20, res.RSSAfter>>20,
			res.PerConn/1024, res.HeapPerConn/1024, res.StackPerConn/1024, res.GoroutinesPerConn)
	}
	return res, nil
}

func sumRSS(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += rssBytes(p)
	}
	return n
}

// workerStats reads every forwarder process's /stats once: the sum of
// their runtime figures, and each one's flows.
func workerStats(fs []ctl.ForwarderReport) (snapshot.RuntimeStats, []int, error) {
	var sum snapshot.RuntimeStats
	var flows []int
	for _, f := range fs {
		st, err := forwarderStats(f)
		if err != nil {
			return sum, nil, fmt.Errorf("forwarder %s stats: %w", f.Label(), err)
		}
		flows = append(flows, st.Flows)
		sum.Goroutines += st.Runtime.Goroutines
		sum.HeapInuseBytes += st.Runtime.HeapInuseBytes
		sum.StackBytes += st.Runtime.StackBytes
		sum.HeapObjects += st.Runtime.HeapObjects
		sum.SysBytes += st.Runtime.SysBytes
	}
	return sum, flows, nil
}

// forwarderStats reads a forwarder's /stats.
func forwarderStats(f ctl.ForwarderReport) (snapshot.Stats, error) {
	var st snapshot.Stats
	return st, ctl.ForwarderJSON(f, "/stats", &st)
}

// explain says why connections failed, from the forwarders' counters and
// logs and the targets' liveness.
func explain(log io.Writer, s *ctl.Report) {
	for _, f := range s.Forwarders {
		if st, err := forwarderStats(f); err == nil {
			b, _ := json.Marshal(st)
			fmt.Fprintf(log, "forwarder %s stats: %s\n", f.Label(), b)
		}
		fmt.Fprintf(log, "forwarder %s log (last lines):\n%s\n", f.Label(), ctl.LogTail(f.Log, 5))
	}
	for _, tg := range s.Targets {
		if !tg.External {
			fmt.Fprintf(log, "target %s:%d alive: %v\n", tg.IP, tg.Port, tg.Alive)
		}
	}
}

// HoldResult is what one `pvlink bench hold` process reports once it has
// tried all its connections.
type HoldResult struct {
	Open       int    `json:"open"`
	Failed     int    `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
}

// Hold opens count connections to addr from namespace ns (32 at a time),
// sends one byte on each (which brings the proxy header out) and returns
// them open.
func Hold(ctx context.Context, ns, addr string, count int) ([]net.Conn, HoldResult) {
	dial := DialFrom(ns)
	conns := make([]net.Conn, count)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				c, err := dial(ctx, addr)
				if err == nil {
					_, err = c.Write([]byte{0})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if c != nil {
						c.Close()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	r := HoldResult{Failed: int(failed.Load())}
	r.Open = count - r.Failed
	if v := firstErr.Load(); v != nil {
		r.FirstError = v.(string)
	}
	return conns, r
}

// holder is a `pvlink bench hold` process: it reports on stdout and holds
// its connections until its stdin closes.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startHolder(exe, ns, addr string, count int) (*holder, error) {
	cmd := exec.Command(exe, "bench", "hold", "--netns", ns, "--addr", addr, "--count", fmt.Sprint(count))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start client process: %w", err)
	}
	return &holder{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}, nil
}

// wait reads the holder's report, or gives up when ctx ends (the caller
// then stops the holder, which ends the read).
func (h *holder) wait(ctx context.Context) (HoldResult, error) {
	type read struct {
		line []byte
		err  error
	}
	got := make(chan read, 1)
	go func() {
		line, err := h.out.ReadBytes('\n')
		got <- read{line, err}
	}()
	var r HoldResult
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case g := <-got:
		if g.err != nil {
			return r, fmt.Errorf("client process %d: %w", h.cmd.Process.Pid, g.err)
		}
		return r, json.Unmarshal(g.line, &r)
	}
}

// stop closes the holder's stdin (it closes its connections and exits) and
// kills it if it has not after a while.
func (h *holder) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}
