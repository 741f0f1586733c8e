package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// With forwarder_workers: 2 each AZ is served by two processes on two
// queues of every ENI's TUN: the kernel keeps each flow on one queue, so
// every exchange completes; flows land on both workers; `fabric metrics`
// sums them per ENI; `pvlink flows` lists both workers' flows.
func TestTwoWorkersShareAnAZ(t *testing.T) {
	topo := strings.Replace(demoTopology(t), "region: us-east-1\n", "region: us-east-1\nforwarder_workers: 2\n", 1)
	f := fabrictest.Up(t, topo)
	if got := len(f.Status.Forwarders); got != 4 {
		t.Fatalf("%d forwarder processes, want 2 AZs x 2 workers", got)
	}
	consumer := f.Netns(t, "consumer")
	e := f.Status.Endpoints[0]
	eni := e.ENIs[0]
	addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(e.Ports[0])).String()
	dial := fabrictest.DialFrom(consumer)

	// Idle connections, to see where they landed.
	const idle = 64
	openIdle(t, consumer, addr, idle)
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

	out, err = fabrictest.Run(t, "flows", f.Name, "--az", eni.AZ, "-o", "json")
	if err != nil {
		t.Fatalf("flows: %v\n%s", err, out)
	}
	var flows []struct {
		Worker int `json:"worker"`
	}
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		t.Fatal(err)
	}
	listed := map[int]int{}
	for _, fl := range flows {
		listed[fl.Worker]++
	}
	if fmt.Sprint(listed) != fmt.Sprint(perWorker) {
		t.Errorf("pvlink flows lists %v per worker, the workers hold %v", listed, perWorker)
	}
}
