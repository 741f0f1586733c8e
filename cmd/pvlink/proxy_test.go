package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/proxyproto"
)

// proxyTopology is the demo plus two listeners whose targets the test
// itself serves (external), one per header placement. Their health checks
// are off: a check's connection would reach the test's listener like a
// relayed one, and the test could take it for the consumer's.
func proxyTopology(t *testing.T) string {
	topo := demoTopology(t)
	topo = strings.Replace(topo, "load_balancers:\n", `  - name: speaks-first
    vpc: provider
    port: 9000
    proxy_protocol_v2: true
    proxy_protocol_v2_header_placement: on_first_ack_with_payload
    health_check: {enabled: false}
    targets:
      - {ip: 198.19.1.20, external: true}
  - name: early
    vpc: provider
    port: 9001
    proxy_protocol_v2: true
    proxy_protocol_v2_header_placement: on_first_ack
    health_check: {enabled: false}
    targets:
      - {ip: 198.19.1.21, external: true}

load_balancers:
`, 1)
	return strings.Replace(topo, "      - {protocol: TCP, port: 80, target_group: web}\n",
		"      - {protocol: TCP, port: 80, target_group: web}\n      - {protocol: TCP, port: 81, target_group: speaks-first}\n      - {protocol: TCP, port: 82, target_group: early}\n", 1)
}

func TestProxyProtocolTellsTheTargetTheConsumerAndEndpoint(t *testing.T) {
	// Health checks every second: the first one may find its target not
	// yet listening (they start together), and the next must come within
	// the test's wait.
	topo := strings.Replace(proxyTopology(t), "    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n    targets:\n      - ip: 198.19.1.10",
		"    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n    health_check: {interval: 1s}\n    targets:\n      - ip: 198.19.1.10", 1)
	if !strings.Contains(topo, "interval: 1s") {
		t.Fatal("the demo's target group changed: set its health check interval here")
	}
	f := fabrictest.Up(t, topo)
	e := f.Status.Endpoints[0]
	for _, eni := range e.ENIs {
		addr := eni.IP + ":80"
		c := &peer.Client{Addr: addr, Timeout: 10 * time.Second, Dial: fabrictest.DialFrom(f.Netns(t, "consumer"))}
		res, err := c.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var seen peer.Seen
		if err := json.Unmarshal(res.Target, &seen); err != nil {
			t.Fatal(err)
		}
		p := seen.Proxy
		if p == nil {
			t.Fatalf("%s: target saw no proxy header: %s", eni.AZ, res.Target)
		}
		if p.Command != "PROXY" || p.Source != res.Local || p.Destination != addr || p.VPCEndpoint != e.ID || !p.CRC || !p.CRCOK || p.Length != 100 {
			t.Errorf("%s: header %+v; want PROXY %s -> %s via %s, valid CRC, 100 bytes", eni.AZ, p, res.Local, addr, e.ID)
		}
	}
	// The load balancer's own health checks carry a LOCAL header: each
	// target's log shows one from its AZ's node (the first check runs at
	// start).
	for _, tg := range f.Status.Targets {
		if tg.External {
			continue
		}
		log := ""
		waitUntil(t, 5*time.Second, "a health check at "+tg.IP, func() bool {
			data, _ := os.ReadFile(tg.Log)
			log = string(data)
			return strings.Contains(log, `"command":"LOCAL"`)
		})
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, `"command":"LOCAL"`) && !strings.Contains(line, `"peer":"`+nodeIP(t, f.Status, tg.AZ)+":") {
				t.Errorf("health check from a node of another AZ: %s", line)
			}
		}
	}
}

// listenIn opens a listener inside a namespace.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := nsenter.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("target accepted nothing: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxyProtocolHeaderPlacement(t *testing.T) {
	f := fabrictest.Up(t, proxyTopology(t))
	provider, consumer := f.Netns(t, "provider"), f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0] // use1-az1, where both test targets are
	dial := fabrictest.DialFrom(consumer)

	t.Run("on_first_ack_with_payload: a target that speaks first waits for the consumer", func(t *testing.T) {
		ln := listenIn(t, provider, "198.19.1.20:9000")
		client, err := dial(context.Background(), "tcp", eni.IP+":81")
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		target := accept(t, ln)
		// The target speaks first; the consumer says nothing yet.
		if _, err := target.Write([]byte("220 ready\r\n")); err != nil {
			t.Fatal(err)
		}
		banner, err := bufio.NewReader(client).ReadString('\n')
		if err != nil || banner != "220 ready\r\n" {
			t.Fatalf("consumer read %q, %v", banner, err)
		}
		target.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var one [1]byte
		if n, err := target.Read(one[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("target received %d bytes (%v) before the consumer sent any", n, err)
		}
		if _, err := client.Write([]byte("HELO consumer\r\n")); err != nil {
			t.Fatal(err)
		}
		target.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := proxyproto.Decoder{}.Read(target)
		if err != nil {
			t.Fatalf("header: %v", err)
		}
		if h.Source.String() != client.LocalAddr().String() || h.Destination.String() != eni.IP+":81" || !h.CRCOK {
			t.Errorf("header %+v", h)
		}
		line, err := bufio.NewReader(target).ReadString('\n')
		if err != nil || line != "HELO consumer\r\n" {
			t.Errorf("after the header the target read %q, %v", line, err)
		}
	})

	t.Run("on_first_ack: the header arrives at once", func(t *testing.T) {
		ln := listenIn(t, provider, "198.19.1.21:9001")
		client, err := dial(context.Background(), "tcp", eni.IP+":82")
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		target := accept(t, ln)
		target.SetReadDeadline(time.Now().Add(2 * time.Second))
		h, err := proxyproto.Decoder{}.Read(target)
		if err != nil {
			t.Fatalf("no header without consumer bytes: %v", err)
		}
		if h.Source.String() != client.LocalAddr().String() || h.VPCEndpointID != f.Status.Endpoints[0].ID {
			t.Errorf("header %+v", h)
		}
		// Nothing else came: the consumer has sent nothing.
		target.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _ := io.ReadFull(target, make([]byte, 1)); n != 0 {
			t.Error("bytes after the header before the consumer sent any")
		}
	})
}
