package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// echoLine writes a line on c and waits up to d for its echo.
func echoLine(c net.Conn, r *bufio.Reader, line string, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(line)); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err == nil && got != line {
		return errors.New("echo " + got)
	}
	return err
}

func TestAnAZDownBlackHolesItsENIsAndItsDNSAndAZUpUndoesItExactly(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	dial := fabrictest.DialFrom(consumer)
	e := f.Status.Endpoints[0]
	az1, az2 := e.ENIs[0], e.ENIs[1]
	v4, _ := enisOf(e)

	// A connection through az1 made before the outage. (The target echoes
	// after its one-line report of what it saw.)
	open := func(eni string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := dial(context.Background(), "tcp", eni+":80")
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("hello\n"))
		if _, err := r.ReadString('\n'); err != nil { // the target's report
			t.Fatalf("through %s: %v", eni, err)
		}
		if got, err := r.ReadString('\n'); err != nil || got != "hello\n" {
			t.Fatalf("echo through %s: %q, %v", eni, got, err)
		}
		c.SetDeadline(time.Time{})
		return c, r
	}
	before, beforeR := open(az1.IP)
	defer before.Close()

	if out, err := fabrictest.Run(t, "fault", "az-down", f.Name, az1.AZ); err != nil {
		t.Fatalf("fault az-down: %v\n%s", err, out)
	}
	f.Refresh(t)
	if len(f.Status.Faults) != 1 || f.Status.Faults[0].AZ != az1.AZ {
		t.Fatalf("status faults: %+v", f.Status.Faults)
	}
	if out, _ := fabrictest.Run(t, "fabric", "status", f.Name); !strings.Contains(out, "FAULT: az-down "+az1.AZ) {
		t.Errorf("fabric status does not show the fault:\n%s", out)
	}

	// az1's ENI: a new connection times out (no RST), the open one's
	// bytes vanish, and the regional name leaves az1 out.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	c, err := dial(ctx, "tcp", az1.IP+":80")
	cancel()
	if err == nil {
		c.Close()
		t.Fatal("a connection to the downed AZ's ENI was made")
	}
	if !isTimeout(err) {
		t.Errorf("a connection to the downed AZ's ENI: %v, want a timeout", err)
	}
	if err := echoLine(before, beforeR, "during\n", 1500*time.Millisecond); !isTimeout(err) {
		t.Errorf("the open connection through the downed AZ: %v, want its bytes to vanish (a timeout)", err)
	}
	waitUntil(t, 5*time.Second, "the regional name without "+az1.AZ, func() bool {
		return slices.Equal(dig(t, consumer, e.DNSNames[0], "A"), []string{az2.IP})
	})
	// The other AZ carries on.
	other, _ := open(az2.IP)
	other.Close()
	// Metrics say so.
	metrics := scrape(t, f.Status.API.Metrics)
	if !strings.Contains(metrics, `pvlink_fault_active{az="`+az1.AZ+`",kind="az-down"} 1`) || !strings.Contains(metrics, `pvlink_fault_active{az="`+az2.AZ+`",kind="az-down"} 0`) {
		t.Error("pvlink_fault_active does not show the fault")
	}
	if n := dropsFor(t, f, az1, "fault"); n == 0 {
		t.Error("no packets counted as dropped by the fault")
	}

	// az-up: everything as it was, the open connection included (TCP
	// retransmits what vanished).
	if out, err := fabrictest.Run(t, "fault", "az-up", f.Name, az1.AZ); err != nil {
		t.Fatalf("fault az-up: %v\n%s", err, out)
	}
	before.SetDeadline(time.Now().Add(15 * time.Second))
	if got, err := beforeR.ReadString('\n'); err != nil || got != "during\n" {
		t.Errorf("the open connection after az-up: %q, %v; want the echo that had vanished", got, err)
	}
	after, _ := open(az1.IP)
	after.Close()
	waitUntil(t, 5*time.Second, "the regional name with both AZs", func() bool {
		return slices.Equal(dig(t, consumer, e.DNSNames[0], "A"), v4)
	})
	f.Refresh(t)
	if len(f.Status.Faults) != 0 {
		t.Errorf("faults after az-up: %+v", f.Status.Faults)
	}

	// fabric down with a fault in force leaves nothing.
	if out, err := fabrictest.Run(t, "fault", "az-down", f.Name, az2.AZ); err != nil {
		t.Fatalf("fault az-down: %v\n%s", err, out)
	}
	if out, err := fabrictest.Run(t, "fabric", "down", f.Name); err != nil {
		t.Fatalf("fabric down with a fault in force: %v\n%s", err, out)
	}
	if left := leftovers(t, f.Name, nil); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// scrape reads a Prometheus text page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func httpGet(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func TestAnAZDownTakesItsTargetsFromCrossZoneNodesAndAZUpGivesThemBack(t *testing.T) {
	topo := strings.Replace(demoTopology(t), "    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n",
		"    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n    health_check: {interval: 200ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2}\n", 1)
	topo = strings.Replace(topo, "  - name: web-nlb\n    vpc: provider\n", "  - name: web-nlb\n    vpc: provider\n    cross_zone: true\n", 1)
	if !strings.Contains(topo, "cross_zone: true") || !strings.Contains(topo, "interval: 200ms") {
		t.Fatal("the demo topology changed: set cross-zone and fast health checks here")
	}
	f := fabrictest.Up(t, topo)
	e := f.Status.Endpoints[0]
	az2 := e.ENIs[1]
	stateFrom := func(az, target string) string {
		var ts []snapshot.TargetInfo
		f.GetJSON(t, az, "/targets", &ts)
		for _, x := range ts {
			if x.Target == target {
				return x.State
			}
		}
		return "absent"
	}
	const az1Target = "198.19.1.10:8080"
	waitUntil(t, 10*time.Second, "az2's node to find the az1 target healthy", func() bool { return stateFrom(az2.AZ, az1Target) == "healthy" })

	if out, err := fabrictest.Run(t, "fault", "az-down", f.Name, e.ENIs[0].AZ); err != nil {
		t.Fatalf("fault az-down: %v\n%s", err, out)
	}
	// Its checks go unanswered: unhealthy after two of them.
	waitUntil(t, 10*time.Second, "az2's node to find the az1 target unhealthy", func() bool { return stateFrom(az2.AZ, az1Target) == "unhealthy" })
	// Then every connection through az2 reaches az2's target, none hangs.
	dial := fabrictest.DialFrom(f.Netns(t, "consumer"))
	for i := 0; i < 20; i++ {
		res, err := (&peer.Client{Addr: az2.IP + ":80", Timeout: 3 * time.Second, Dial: dial}).Run(context.Background())
		if err != nil {
			t.Fatalf("connection %d through %s: %v", i, az2.AZ, err)
		}
		var seen peer.Seen
		json.Unmarshal(res.Target, &seen)
		if seen.AZ != az2.AZ {
			t.Fatalf("connection %d reached a target in %s, whose AZ is down", i, seen.AZ)
		}
	}
	if out, err := fabrictest.Run(t, "fault", "az-up", f.Name, e.ENIs[0].AZ); err != nil {
		t.Fatalf("fault az-up: %v\n%s", err, out)
	}
	waitUntil(t, 10*time.Second, "az2's node to find the az1 target healthy again", func() bool { return stateFrom(az2.AZ, az1Target) == "healthy" })
}
