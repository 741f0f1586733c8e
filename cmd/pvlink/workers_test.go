package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// With forwarder_workers: 2 each AZ is served by two processes on two
// queues of every ENI's TUN: the kernel keeps each flow on one queue, so
// every exchange completes; flows land on both workers; `fabric metrics`
// sums them per ENI; `pvlink flows` lists both workers' flows.
func TestTwoWorkersShareAnAZ(t *testing.T) {
	w := upTwoWorkers(t)
	f, eni, addr, dial := w.f, w.eni, w.addr, w.dial
	if got := len(f.Status.Forwarders); got != 4 {
		t.Fatalf("%d forwarder processes, want 2 AZs x 2 workers", got)
	}

	// Idle connections, to see where they landed.
	const idle = 64
	openIdle(t, f.Netns(t, "consumer"), addr, idle)
	// Exchanges with data both ways, through both workers.
	const exchanges = 40
	var echoed int64
	for i := 0; i < exchanges; i++ {
		c := &peer.Client{Addr: addr, Bytes: 200 << 10, Timeout: 10 * time.Second, Dial: dial}
		res, err := c.Run(context.Background())
		if err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if !res.Intact {
			t.Fatalf("exchange %d: echo not intact", i)
		}
		echoed += res.Echoed
	}

	perWorker := map[int]int{}
	var total int
	for _, fw := range f.Status.Forwarders {
		if fw.AZ != eni.AZ {
			continue
		}
		var st snapshot.Stats
		fabrictest.ForwarderJSON(t, fw, "/stats", &st)
		perWorker[fw.Worker] = st.Flows
		total += st.Flows
	}
	t.Logf("idle flows per worker of %s: %v", eni.AZ, perWorker)
	if total != idle || perWorker[0] == 0 || perWorker[1] == 0 {
		t.Fatalf("flows per worker %v: want %d in all, some on each", perWorker, idle)
	}

	out, err := fabrictest.Run(t, "fabric", "metrics", f.Name, "-o", "json")
	if err != nil {
		t.Fatalf("fabric metrics: %v\n%s", err, out)
	}
	var rows []struct {
		AZ string `json:"az"`
		snapshot.ENICounters
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		if r.ENI != eni.ID {
			continue
		}
		found = true
		if r.ActiveConnections != idle || r.NewConnections != idle+exchanges {
			t.Errorf("ENI %s summed over workers: active %d, new %d; want %d and %d", r.ENI, r.ActiveConnections, r.NewConnections, idle, idle+exchanges)
		}
		if r.BytesProcessed < uint64(2*echoed) {
			t.Errorf("ENI %s: %d bytes processed, want at least %d", r.ENI, r.BytesProcessed, 2*echoed)
		}
	}
	if !found {
		t.Fatalf("ENI %s missing from fabric metrics:\n%s", eni.ID, out)
	}

	listed := map[int]int{}
	for _, worker := range flowWorker(t, f, eni.AZ) {
		listed[worker]++
	}
	if fmt.Sprint(listed) != fmt.Sprint(perWorker) {
		t.Errorf("pvlink flows lists %v per worker, the workers hold %v", listed, perWorker)
	}
}

// A worker that dies is started again by ctld; the flows the other worker
// of its AZ holds must not notice, even those idle for longer than the
// TUN remembers which queue a flow's packets came from (3 s), which the
// kernel then steers by the queues' numbering alone. ctld keeps the dead
// worker's queue in the TUN and hands it to the worker started again,
// which then serves new connections from it.
func TestAWorkerRestartLeavesTheOtherWorkersFlowsAlone(t *testing.T) {
	restartLeavesTheOtherWorkersFlowsAlone(t, false)
}

// The same when ctld itself was killed and started again before the worker
// died: the new ctld takes its copies of the queues from the running
// workers.
func TestCtldStartedAgainKeepsTheWorkersQueues(t *testing.T) {
	restartLeavesTheOtherWorkersFlowsAlone(t, true)
}

func restartLeavesTheOtherWorkersFlowsAlone(t *testing.T, ctldAgain bool) {
	w := upTwoWorkers(t)
	f, eni, addr, dial := w.f, w.eni, w.addr, w.dial

	const n = 48
	before := openEchoed(t, dial, addr, n)
	var survivors []echoConn
	for _, c := range before {
		if flowWorker(t, f, eni.AZ)[c.LocalAddr().String()] == 1 {
			survivors = append(survivors, c)
		}
	}
	if len(survivors) == 0 || len(survivors) == n {
		t.Fatalf("%d of %d flows on worker 1: want some on each worker", len(survivors), n)
	}
	if ctldAgain {
		p := ctl.DaemonProcess(f.Name)
		if p == nil || syscall.Kill(p.PID, syscall.SIGKILL) != nil {
			t.Fatalf("cannot kill ctld (%v)", p)
		}
		waitUntil(t, 5*time.Second, "ctld gone", func() bool { return ctl.DaemonProcess(f.Name) == nil })
		pvlink(t, "fabric", "apply", "-f", f.File) // starts it again
	}
	victim := waitQueuesKept(t, f, eni.AZ)
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Connections opened while the worker is down: those the kernel
	// steers to its queue wait there for the worker started again.
	const during = 16
	type result struct {
		took time.Duration
		err  error
	}
	results := make(chan result, during)
	for i := 0; i < during; i++ {
		go func() {
			start := time.Now()
			c := &peer.Client{Addr: addr, Bytes: 1 << 10, Timeout: 5 * time.Second, Dial: dial}
			_, err := c.Run(context.Background())
			results <- result{time.Since(start), err}
		}()
	}
	down := waitUntil(t, 10*time.Second, victim.Label()+" started again", func() bool {
		f.Refresh(t)
		for _, fw := range f.Status.Forwarders {
			if fw.Label() == victim.Label() && fw.Alive && fw.PID != victim.PID {
				return true
			}
		}
		return false
	})
	t.Logf("%s started again %s after kill -9", victim.Label(), down.Round(time.Millisecond))
	time.Sleep(4 * time.Second) // past the TUN's memory of each flow's queue

	lost := 0
	for _, c := range survivors {
		if err := c.echo('y'); err != nil {
			lost++
			t.Logf("%s: %v", c.LocalAddr(), err)
		}
	}
	t.Logf("%d flows on worker 1; after worker 0's restart %d of them lost", len(survivors), lost)
	if lost > 0 {
		t.Fatalf("%d of worker 1's %d idle flows lost when worker 0 was started again", lost, len(survivors))
	}
	var waited []time.Duration
	for i := 0; i < during; i++ {
		r := <-results
		if r.err != nil {
			t.Errorf("a connection opened while worker 0 was down: %v", r.err)
		} else if r.took > 100*time.Millisecond {
			waited = append(waited, r.took.Round(time.Millisecond))
		}
	}
	// Those that waited were the new worker's first connections.
	var served uint64
	f.Refresh(t)
	for _, fw := range f.Status.Forwarders {
		if fw.Label() == victim.Label() {
			var cs []snapshot.ENICounters
			fabrictest.ForwarderJSON(t, fw, "/counters", &cs)
			for _, c := range cs {
				served += c.NewConnections
			}
		}
	}
	t.Logf("of %d connections opened during the outage, %d waited for the restarted worker (%v); it has served %d", during, len(waited), waited, served)
	if served == 0 {
		t.Fatalf("the restarted worker served none of the connections opened while it was down")
	}

	// New connections reach both workers, the new process included.
	after := openEchoed(t, dial, addr, 16)
	on := map[int]int{}
	workers := flowWorker(t, f, eni.AZ)
	for _, c := range after {
		on[workers[c.LocalAddr().String()]]++
	}
	if on[0] == 0 || on[1] == 0 {
		t.Fatalf("new connections per worker after the restart: %v, want some on each", on)
	}
}

// waitQueuesKept waits until ctld keeps a copy of every TUN queue of the
// workers of az, and returns worker 0.
func waitQueuesKept(t *testing.T, f *fabrictest.Fabric, az string) ctl.ForwarderReport {
	t.Helper()
	var w0 ctl.ForwarderReport
	waitUntil(t, 10*time.Second, "ctld keeping every worker's queues", func() bool {
		f.Refresh(t)
		all := true
		for _, fw := range f.Status.Forwarders {
			if fw.AZ == az {
				all = all && fw.TUNQueues > 0 && fw.QueuesKept == fw.TUNQueues
				if fw.Worker == 0 {
					w0 = fw
				}
			}
		}
		return all
	})
	return w0
}

// A worker that cannot be started again must not keep its share of new
// connections waiting in a queue nobody will read: ctld lets go of its
// copies, the TUN drops the queue, and the other worker takes everything
// until the worker does start. The restart is made to fail by holding the
// worker's pid file lock, as a process still running would.
func TestAWorkerThatCannotStartAgainGivesUpItsQueues(t *testing.T) {
	w := upTwoWorkers(t)
	f, eni := w.f, w.eni
	victim := waitQueuesKept(t, f, eni.AZ)

	ctld := ctl.DaemonProcess(f.Name)
	if ctld == nil {
		t.Fatal("no ctld")
	}
	syscall.Kill(ctld.PID, syscall.SIGSTOP) // no restart before the lock is taken
	t.Cleanup(func() { syscall.Kill(ctld.PID, syscall.SIGCONT) })
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(strings.TrimSuffix(victim.Log, ".log")+".pid", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	waitUntil(t, 5*time.Second, "the dead worker's pid file lock", func() bool {
		return syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	})
	syscall.Kill(ctld.PID, syscall.SIGCONT)

	report := func() (fr ctl.ForwarderReport) {
		f.Refresh(t)
		for _, fw := range f.Status.Forwarders {
			if fw.Label() == victim.Label() {
				fr = fw
			}
		}
		return fr
	}
	waitUntil(t, 10*time.Second, "ctld letting go of the queues of "+victim.Label()+", which it cannot start", func() bool {
		fr := report()
		return fr.Restarts > 0 && !fr.Alive && fr.QueuesKept == 0
	})
	// Every new connection is answered by the worker that runs.
	for i := 0; i < 32; i++ {
		c := &peer.Client{Addr: w.addr, Timeout: 900 * time.Millisecond, Dial: w.dial}
		if _, err := c.Run(context.Background()); err != nil {
			t.Fatalf("connection %d while %s cannot start: %v", i, victim.Label(), err)
		}
	}
	// Once it can, it starts, on a queue of its own, and takes its share.
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	lock.Close()
	waitQueuesKept(t, f, eni.AZ)
	after := openEchoed(t, w.dial, w.addr, 16)
	on := map[int]int{}
	workers := flowWorker(t, f, eni.AZ)
	for _, c := range after {
		on[workers[c.LocalAddr().String()]]++
	}
	if on[0] == 0 || on[1] == 0 {
		t.Fatalf("new connections per worker once %s runs again: %v, want some on each", victim.Label(), on)
	}
}

// twoWorkers is the demo fabric with two forwarder workers per AZ, and
// the way to its first ENI from the consumer VPC.
type twoWorkers struct {
	topo string
	f    *fabrictest.Fabric
	eni  ctl.ENIState
	addr string
	dial func(context.Context, string, string) (net.Conn, error)
}

func upTwoWorkers(t *testing.T) twoWorkers {
	topo := strings.Replace(demoTopology(t), "region: us-east-1\n", "region: us-east-1\nforwarder_workers: 2\n", 1)
	f := fabrictest.Up(t, topo)
	e := f.Status.Endpoints[0]
	eni := e.ENIs[0]
	return twoWorkers{
		topo: topo, f: f, eni: eni,
		addr: netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(e.Ports[0])).String(),
		dial: fabrictest.DialFrom(f.Netns(t, "consumer")),
	}
}

// echoConn is a connection to a demo target that has had its report line
// read.
type echoConn struct {
	net.Conn
	r *bufio.Reader
}

// echo sends b and reads it back within 3 s.
func (c echoConn) echo(b byte) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte{b}); err != nil {
		return err
	}
	got, err := c.r.ReadByte()
	if err == nil && got != b {
		err = fmt.Errorf("echoed %q, sent %q", got, b)
	}
	return err
}

// openEchoed opens n connections that each carried a byte to the target
// and back (the target reports a connection with a line once the proxy
// header and the first byte came), closed when the test ends.
func openEchoed(t *testing.T, dial func(context.Context, string, string) (net.Conn, error), addr string, n int) []echoConn {
	t.Helper()
	var out []echoConn
	for i := 0; i < n; i++ {
		nc, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		c := echoConn{nc, bufio.NewReader(nc)}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if b, err := c.r.ReadByte(); err != nil || b != 'x' {
			t.Fatalf("echo: %q, %v", b, err)
		}
		out = append(out, c)
	}
	return out
}

// flowWorker is the worker of each open flow of an AZ, by consumer address.
func flowWorker(t *testing.T, f *fabrictest.Fabric, az string) map[string]int {
	t.Helper()
	out, err := fabrictest.Run(t, "flows", f.Name, "--az", az, "-o", "json")
	if err != nil {
		t.Fatalf("flows: %v\n%s", err, out)
	}
	var flows []struct {
		Src    string `json:"src"`
		Worker int    `json:"worker"`
	}
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, fl := range flows {
		m[fl.Src] = fl.Worker
	}
	return m
}

// A worker stopped on purpose (fewer workers per AZ) takes its TUN queues
// with it: ctld lets go of its copies first, or the kernel would go on
// steering a share of the connections to a queue nobody reads.
func TestAWorkerStoppedOnPurposeLeavesNoQueueBehind(t *testing.T) {
	w := upTwoWorkers(t)
	f, addr, dial := w.f, w.addr, w.dial
	openEchoed(t, dial, addr, 8) // both workers' queues carried flows

	one := strings.Replace(w.topo, "forwarder_workers: 2\n", "forwarder_workers: 1\n", 1)
	if err := os.WriteFile(f.File, []byte(strings.ReplaceAll(one, "NAME", f.Name)), 0o644); err != nil {
		t.Fatal(err)
	}
	pvlink(t, "fabric", "apply", "-f", f.File)
	f.Refresh(t)
	if got := len(f.Status.Forwarders); got != 2 {
		t.Fatalf("%d forwarder processes after the change, want one per AZ", got)
	}
	// Every new connection is answered: none is steered to a queue left
	// behind (a SYN that vanished would fail its exchange after 1 s).
	for i := 0; i < 32; i++ {
		c := &peer.Client{Addr: addr, Timeout: 900 * time.Millisecond, Dial: dial}
		if _, err := c.Run(context.Background()); err != nil {
			t.Fatalf("connection %d after the second worker stopped: %v", i, err)
		}
	}
}
