package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// pvlink runs the CLI and fails the test if it fails.
func pvlink(t *testing.T, args ...string) string {
	t.Helper()
	out, err := fabrictest.Run(t, args...)
	if err != nil {
		t.Fatalf("pvlink %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exchange opens a connection from the consumer VPC and has one echo
// through it; the connection stays open.
func exchange(t *testing.T, f *fabrictest.Fabric, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := fabrictest.DialFrom(f.Netns(t, "consumer"))(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		c.Close()
		return nil, err
	}
	// The target writes its report line, then echoes.
	buf := make([]byte, 0, 4096)
	for !strings.Contains(string(buf), "hello") {
		tmp := make([]byte, 4096)
		n, err := c.Read(tmp)
		if err != nil {
			c.Close()
			return nil, err
		}
		buf = append(buf, tmp[:n]...)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

func endpointState(t *testing.T, f *fabrictest.Fabric) string {
	t.Helper()
	f.Refresh(t)
	return f.Status.Endpoints[0].State
}

func TestEndpointCarriesTrafficOnlyWhileAvailable(t *testing.T) {
	f := fabrictest.Up(t, strings.Replace(demoTopology(t), "acceptance_required: false", "acceptance_required: true", 1))
	if s := endpointState(t, f); s != snapshot.StatePendingAcceptance {
		t.Fatalf("a new endpoint of a service that requires acceptance is %s", s)
	}
	eni := f.Status.Endpoints[0].ENIs[0]
	addr := net.JoinHostPort(eni.IP, "80")

	// pendingAcceptance: the SYN gets no answer, as in AWS.
	_, err := exchange(t, f, addr, 1500*time.Millisecond)
	if err == nil || !isTimeout(err) {
		t.Fatalf("connect while pendingAcceptance: %v, want a timeout (no answer)", err)
	}
	if n := dropsFor(t, f, eni, "not_available"); n < 1 {
		t.Fatalf("not_available drops = %d, want the SYNs counted", n)
	}

	start := time.Now()
	pvlink(t, "endpoint", "accept", f.Name, f.Status.Endpoints[0].ID)
	var held net.Conn
	for held == nil {
		if held, err = exchange(t, f, addr, 300*time.Millisecond); err != nil && time.Since(start) > time.Second {
			t.Fatalf("no connection within 1 s of accepting: %v", err)
		}
	}
	defer held.Close()
	t.Logf("first exchange %s after the accept command started", time.Since(start).Round(time.Millisecond))
	if s := endpointState(t, f); s != snapshot.StateAvailable {
		t.Fatalf("accepted endpoint is %s", s)
	}

	// Rejected: the open connection gets a RST, new ones no answer.
	start = time.Now()
	pvlink(t, "endpoint", "reject", f.Name, f.Status.Endpoints[0].ID)
	held.SetReadDeadline(time.Now().Add(time.Second))
	_, err = io.ReadAll(held)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection after reject: read gave %v, want a reset", err)
	}
	t.Logf("reset %s after the reject command started", time.Since(start).Round(time.Millisecond))
	if _, err := exchange(t, f, addr, time.Second); err == nil || !isTimeout(err) {
		t.Fatalf("connect after reject: %v, want a timeout", err)
	}
	if s := endpointState(t, f); s != snapshot.StateRejected {
		t.Fatalf("rejected endpoint is %s", s)
	}
	// A rejected endpoint cannot be accepted: one clear sentence.
	out, err := fabrictest.Run(t, "endpoint", "accept", f.Name, f.Status.Endpoints[0].ID)
	if err == nil || !strings.Contains(out, "only a connection request that is pendingAcceptance can be accepted") {
		t.Fatalf("accepting a rejected endpoint: %v\n%s", err, out)
	}
}

func forwarderPIDs(t *testing.T, f *fabrictest.Fabric) map[string]int {
	t.Helper()
	f.Refresh(t)
	out := map[string]int{}
	for _, fw := range f.Status.Forwarders {
		out[fw.Label()] = fw.PID
	}
	return out
}

// probeAll connects through every ENI of every endpoint.
func probeAll(t *testing.T, f *fabrictest.Fabric) int {
	t.Helper()
	f.Refresh(t)
	n := 0
	for _, e := range f.Status.Endpoints {
		for _, eni := range e.ENIs {
			c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 5 * time.Second, Dial: fabrictest.DialFrom(eni.Netns)}
			if _, err := c.Run(context.Background()); err != nil {
				t.Fatalf("endpoint %s, ENI %s (%s): %v", e.Name, eni.ID, eni.AZ, err)
			}
			n++
		}
	}
	return n
}

// seenBy counts, over n connections, those served by the target at addr.
func seenBy(t *testing.T, f *fabrictest.Fabric, eniAddr, target string, n int) int {
	t.Helper()
	hits := 0
	for i := 0; i < n; i++ {
		c := &peer.Client{Addr: eniAddr, Timeout: 5 * time.Second, Dial: fabrictest.DialFrom(f.Netns(t, "consumer"))}
		res, err := c.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var seen peer.Seen
		json.Unmarshal(res.Target, &seen)
		if strings.HasPrefix(seen.Local, target+":") {
			hits++
		}
	}
	return hits
}

func healthChecks(t *testing.T, log string) int {
	data, _ := os.ReadFile(log)
	return strings.Count(string(data), `"command":"LOCAL"`)
}

func TestLiveChangesKeepTheForwardersRunning(t *testing.T) {
	// One AZ to start with; health checks every 500 ms.
	v1 := strings.Replace(demoTopology(t), "      - {subnet: consumer-az2, ipv4: 198.18.2.10}\n", "", 1)
	v1 = strings.Replace(v1, "    targets:\n      - ip: 198.19.1.10\n      - ip: 198.19.2.10\n",
		"    health_check: {interval: 500ms, timeout: 400ms, healthy_threshold: 2, unhealthy_threshold: 2}\n    targets:\n      - ip: 198.19.1.10\n      - ip: 198.19.2.10\n", 1)
	f := fabrictest.Up(t, v1)
	before := forwarderPIDs(t, f)
	if len(before) != 1 {
		t.Fatalf("forwarders %v, want one (use1-az1)", before)
	}

	// fabric apply: a subnet in a new AZ and a second endpoint.
	v2 := strings.Replace(v1, "      - {subnet: consumer-az1, ipv4: 198.18.1.10}\n",
		"      - {subnet: consumer-az1, ipv4: 198.18.1.10}\n      - {subnet: consumer-az2, ipv4: 198.18.2.10}\n", 1)
	v2 += `  - name: web2
    vpc: consumer
    service: web
    subnet_configurations:
      - {subnet: consumer-az1, ipv4: 198.18.1.20}
`
	os.WriteFile(f.File, []byte(strings.ReplaceAll(v2, "NAME", f.Name)), 0o644)
	pvlink(t, "fabric", "apply", "-f", f.File)
	if n := probeAll(t, f); n != 3 {
		t.Fatalf("%d ENIs carried traffic, want 3", n)
	}
	after := forwarderPIDs(t, f)
	if after["use1-az1"] != before["use1-az1"] {
		t.Fatalf("the use1-az1 forwarder was restarted (pid %d -> %d)", before["use1-az1"], after["use1-az1"])
	}

	// A registered target takes new flows within a health-check cycle
	// (healthy after 2 checks of 500 ms).
	pvlink(t, "target", "register", f.Name, "--target-group", "web", "--target", "198.19.1.11")
	eniAddr := "198.18.1.10:80"
	waitUntil(t, 5*time.Second, "the new target 198.19.1.11 takes flows", func() bool {
		return seenBy(t, f, eniAddr, "198.19.1.11", 8) > 0
	})
	// Deregistered, it drains: no new flows.
	pvlink(t, "target", "deregister", f.Name, "--target-group", "web", "--target", "198.19.1.11:8080")
	if n := seenBy(t, f, eniAddr, "198.19.1.11", 16); n != 0 {
		t.Fatalf("a draining target got %d of 16 new flows", n)
	}

	// A changed health-check interval takes effect: 500 ms -> 100 ms.
	f.Refresh(t)
	var log string
	for _, tg := range f.Status.Targets {
		if tg.IP == "198.19.1.10" {
			log = tg.Log
		}
	}
	count := func() int {
		c0 := healthChecks(t, log)
		time.Sleep(2 * time.Second)
		return healthChecks(t, log) - c0
	}
	slow := count()
	v3 := strings.Replace(v2, "interval: 500ms, timeout: 400ms", "interval: 100ms, timeout: 80ms", 1)
	os.WriteFile(f.File, []byte(strings.ReplaceAll(v3, "NAME", f.Name)), 0o644)
	pvlink(t, "fabric", "apply", "-f", f.File)
	fast := count()
	t.Logf("health checks at 198.19.1.10 in 2 s: %d every 500 ms, %d every 100 ms", slow, fast)
	if fast < 2*slow {
		t.Fatalf("health checks in 2 s went %d -> %d after the interval went 500 ms -> 100 ms", slow, fast)
	}
	final := forwarderPIDs(t, f)
	for k, pid := range after {
		if final[k] != pid {
			t.Fatalf("forwarder %s was restarted (pid %d -> %d)", k, pid, final[k])
		}
	}
}

func TestKilledForwarderIsRestartedWithTheLatestSnapshot(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	// A change first, so the latest version is not the one it started with.
	pvlink(t, "target", "deregister", f.Name, "--target-group", "web", "--target", "198.19.2.10:8080")
	f.Refresh(t)
	fw := f.Status.Forwarders[0]
	if err := syscall.Kill(fw.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eni := f.Status.Endpoints[0].ENIs[0]
	waitUntil(t, 2*time.Second, "traffic through "+fw.Label()+" after kill -9", func() bool {
		c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 300 * time.Millisecond, Dial: fabrictest.DialFrom(eni.Netns)}
		_, err := c.Run(context.Background())
		return err == nil
	})
	t.Logf("traffic flowed %s after kill -9", time.Since(start).Round(time.Millisecond))
	f.Refresh(t)
	for _, now := range f.Status.Forwarders {
		if now.Label() != fw.Label() {
			continue
		}
		if now.PID == fw.PID || !now.Alive || now.Restarts != 1 {
			t.Fatalf("forwarder %s after kill -9: pid %d (was %d), alive %v, restarts %d", now.Label(), now.PID, fw.PID, now.Alive, now.Restarts)
		}
		if now.ConfigVersion != f.Status.Version {
			t.Fatalf("restarted forwarder runs version %d, the model is at %d", now.ConfigVersion, f.Status.Version)
		}
	}
}

// A forwarder that answers nothing (stopped by a signal here, as a deadlock
// would leave it) carries no traffic: once it has been silent for 10 s ctld
// kills it and starts it again on the queues it keeps, and traffic through
// its AZ comes back by itself.
func TestAWedgedForwarderIsKilledAndStartedAgain(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	fw := f.Status.Forwarders[0]
	eni := f.Status.Endpoints[0].ENIs[0]
	for _, e := range f.Status.Endpoints[0].ENIs {
		if e.AZ == fw.AZ {
			eni = e
		}
	}
	through := func() bool {
		c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 300 * time.Millisecond, Dial: fabrictest.DialFrom(eni.Netns)}
		_, err := c.Run(context.Background())
		return err == nil
	}
	if !through() {
		t.Fatalf("no traffic through %s at the start", eni.IP)
	}
	if err := syscall.Kill(fw.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(5 * time.Second)
	if through() {
		t.Fatalf("traffic through %s while its forwarder is stopped", eni.IP)
	}
	if state := procState(fw.PID); state != "T" {
		t.Fatalf("forwarder %s (pid %d) should still be there, stopped, 5 s on: state %q", fw.Label(), fw.PID, state)
	}
	waitUntil(t, 20*time.Second, "traffic through "+fw.Label()+" after SIGSTOP", through)
	t.Logf("traffic flowed %s after SIGSTOP", time.Since(start).Round(time.Millisecond))
	if state := procState(fw.PID); state != "" {
		t.Errorf("the stopped forwarder (pid %d) is still there: state %q", fw.PID, state)
	}
	f.Refresh(t)
	for _, now := range f.Status.Forwarders {
		if now.Label() == fw.Label() && (now.PID == fw.PID || !now.Alive || now.Restarts != 1) {
			t.Fatalf("forwarder %s: pid %d (was %d), alive %v, restarts %d", now.Label(), now.PID, fw.PID, now.Alive, now.Restarts)
		}
	}
}

// procState is a process's state letter (T: stopped), "" once it is gone
// (or a zombie).
func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || len(stat) < i+3 || stat[i+2] == 'Z' {
		return ""
	}
	return string(stat[i+2])
}

func TestSnapshotTheForwarderRefusesFailsCleanlyAndCanBeRetried(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	version := f.Status.Version
	// A running forwarder cannot resize its flow table.
	edited := strings.Replace(demoTopology(t), "availability_zones:", "flow_capacity: 4096\navailability_zones:", 1)
	os.WriteFile(f.File, []byte(strings.ReplaceAll(edited, "NAME", f.Name)), 0o644)
	for try := 1; try <= 2; try++ {
		out, err := fabrictest.Run(t, "fabric", "apply", "-f", f.File)
		if err == nil || !strings.Contains(out, "refused version") || !strings.Contains(out, "flow table capacity is fixed") {
			t.Fatalf("try %d: apply of a snapshot the forwarder refuses: %v\n%s", try, err, out)
		}
		f.Refresh(t)
		if f.Status.Version != version || f.Status.Phase != "up" {
			t.Fatalf("try %d: after the refusal the model is at version %d (%s), want %d (up)", try, f.Status.Version, f.Status.Phase, version)
		}
	}
	// The fabric still takes changes and carries traffic.
	pvlink(t, "target", "register", f.Name, "--target-group", "web", "--target", "198.19.1.11")
	probeAll(t, f)
}

func TestChangesThatBreakARuleAreRefusedWithOneSentence(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	version := f.Status.Version
	good := demoTopology(t)
	tests := []struct {
		name, topology, want string
	}{
		{"two subnets in one AZ", strings.Replace(good, "{subnet: consumer-az2, ipv4: 198.18.2.10}", "{subnet: consumer-az2, ipv4: 198.18.2.10}\n      - {subnet: consumer-az1b, ipv4: 198.18.3.10}", 1),
			"one subnet per availability zone"},
		{"a UDP listener", strings.Replace(good, "{protocol: TCP, port: 80,", "{protocol: UDP, port: 80,", 1), "UDP"},
		{"a load balancer removed while endpoints are connected", strings.Replace(strings.Replace(good, "load_balancers: [web-nlb]", "load_balancers: [web-nlb2]", 1),
			"load_balancers:\n  - name: web-nlb\n", "load_balancers:\n  - name: web-nlb2\n", 1), "cannot leave endpoint service web while endpoints are connected"},
	}
	// The two-subnets case needs the subnet to exist.
	tests[0].topology = strings.Replace(tests[0].topology, "      - {name: consumer-az2, availability_zone: use1-az2, cidr: 198.18.2.0/24}",
		"      - {name: consumer-az2, availability_zone: use1-az2, cidr: 198.18.2.0/24}\n      - {name: consumer-az1b, availability_zone: use1-az1, cidr: 198.18.3.0/24}", 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(f.File, []byte(strings.ReplaceAll(tc.topology, "NAME", f.Name)), 0o644)
			out, err := fabrictest.Run(t, "fabric", "apply", "-f", f.File)
			msg := strings.TrimSpace(out)
			if err == nil || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("apply: %v\n%s\nwant one line saying %q", err, out, tc.want)
			}
			f.Refresh(t)
			if f.Status.Version != version {
				t.Fatalf("a refused change moved the model to version %d (was %d)", f.Status.Version, version)
			}
		})
	}
	probeAll(t, f)
}

func TestRemovingAPrincipalKeepsAcceptedConnectionsAndRefusesNewRequests(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	eni := f.Status.Endpoints[0].ENIs[0]
	held, err := exchange(t, f, net.JoinHostPort(eni.IP, "80"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	const allowed = `allowed_principals: ["arn:aws:iam::444455556666:root"]`
	revoked := strings.Replace(demoTopology(t), allowed, "allowed_principals: []", 1)
	os.WriteFile(f.File, []byte(strings.ReplaceAll(revoked, "NAME", f.Name)), 0o644)
	pvlink(t, "fabric", "apply", "-f", f.File)
	if s := endpointState(t, f); s != snapshot.StateAvailable {
		t.Fatalf("after its principal was removed the endpoint is %s", s)
	}
	// The open connection still carries bytes both ways.
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "again" {
		t.Fatalf("the accepted connection after the principal was removed: %q, %v", buf, err)
	}
	// A new request by the same principal is refused, and changes nothing.
	version := endpointVersion(t, f)
	second := revoked + "  - name: web2\n    vpc: consumer\n    service: web\n    subnet_configurations:\n      - {subnet: consumer-az1, ipv4: 198.18.1.20}\n"
	os.WriteFile(f.File, []byte(strings.ReplaceAll(second, "NAME", f.Name)), 0o644)
	out, err := fabrictest.Run(t, "fabric", "apply", "-f", f.File)
	if err == nil || !strings.Contains(out, "endpoint web2: principal arn:aws:iam::444455556666:root is not allowed to connect to endpoint service web") {
		t.Fatalf("a request by a principal no longer allowed: %v\n%s", err, out)
	}
	if v := endpointVersion(t, f); v != version || len(f.Status.Endpoints) != 1 {
		t.Fatalf("the refused request moved the model from version %d to %d (%d endpoints)", version, v, len(f.Status.Endpoints))
	}
}

func endpointVersion(t *testing.T, f *fabrictest.Fabric) uint64 {
	t.Helper()
	f.Refresh(t)
	return f.Status.Version
}

// countAccepts counts the connections a listener accepts (health checks)
// until the test ends.
func countAccepts(ln net.Listener) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

func TestARemovedTargetGroupStopsItsHealthChecksAndARegisteredAgainTargetTakesFlows(t *testing.T) {
	// A second listener (port 81) to a group "aux" whose one target is the
	// test's own listener, checked every 100 ms. It listens on the address
	// of the web target, which stays when aux goes: only the forwarder can
	// stop the checks.
	aux := strings.Replace(demoTopology(t), "load_balancers:\n", `  - name: aux
    vpc: provider
    port: 9000
    health_check: {interval: 100ms, timeout: 80ms, healthy_threshold: 2, unhealthy_threshold: 2}
    targets:
      - {ip: 198.19.1.10, port: 9000, external: true}

load_balancers:
`, 1)
	aux = strings.Replace(aux, "      - {protocol: TCP, port: 80, target_group: web}\n",
		"      - {protocol: TCP, port: 80, target_group: web}\n      - {protocol: TCP, port: 81, target_group: aux}\n", 1)
	f := fabrictest.Up(t, aux)
	checks := countAccepts(listenIn(t, f.Netns(t, "provider"), "198.19.1.10:9000"))
	waitUntil(t, 3*time.Second, "health checks of the aux group", func() bool { return checks.Load() >= 3 })

	// The same fabric without the group (listener and target group gone).
	os.WriteFile(f.File, []byte(strings.ReplaceAll(demoTopology(t), "NAME", f.Name)), 0o644)
	pvlink(t, "fabric", "apply", "-f", f.File)
	time.Sleep(200 * time.Millisecond) // a check already under way may land
	before := checks.Load()
	time.Sleep(time.Second)
	if after := checks.Load(); after != before {
		t.Fatalf("%d health checks in the second after the group was removed (interval 100 ms)", after-before)
	}

	// A target deregistered, then registered again before its delay ran
	// out, takes flows again.
	pvlink(t, "target", "deregister", f.Name, "--target-group", "web", "--target", "198.19.1.10:8080")
	// It was the AZ's only target: while it drains, the node has none.
	c := &peer.Client{Addr: "198.18.1.10:80", Timeout: 2 * time.Second, Dial: fabrictest.DialFrom(f.Netns(t, "consumer"))}
	if _, err := c.Run(context.Background()); err == nil {
		t.Fatal("a connection went through while the AZ's only target drained")
	}
	pvlink(t, "target", "register", f.Name, "--target-group", "web", "--target", "198.19.1.10:8080")
	if n := seenBy(t, f, "198.18.1.10:80", "198.19.1.10", 8); n != 8 {
		t.Fatalf("the target registered again got %d of 8 new flows (it is the AZ's only one)", n)
	}
}
