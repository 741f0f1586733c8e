package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
)

// TestAListenerMovedToAnotherTargetGroupKeepsItsConnections: modify-listener
// points the demo's listener at another target group (the same targets'
// port 8081): new connections reach that group while one made before stays
// with its target, as on an NLB; moved to another port, the listener
// answers there and the old port is refused.
func TestAListenerMovedToAnotherTargetGroupKeepsItsConnections(t *testing.T) {
	topo := demoTopology(t)
	const at = "\nload_balancers:"
	if !strings.Contains(topo, at) {
		t.Fatal("the demo has no load_balancers section")
	}
	topo = strings.Replace(topo, at, `
  - name: blue
    vpc: provider
    protocol: TCP
    port: 8081
    proxy_protocol_v2: true
    targets:
      - ip: 198.19.1.10
      - ip: 198.19.2.10
`+at, 1)
	f := fabrictest.Up(t, topo)
	elb := awsAs(t, f, "provider").elb()
	eni := f.Status.Endpoints[0].ENIs[0]
	dial := fabrictest.DialFrom(eni.Netns)

	// open makes a connection to the ENI's port and returns it with the
	// target's report of it (which the target writes once the proxy
	// header, sent with the first byte, has come).
	open := func(port string) (net.Conn, *bufio.Reader, peer.Seen, error) {
		ctx, cancel := contextWithTimeout(2 * time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", net.JoinHostPort(eni.IP, port))
		if err != nil {
			return nil, nil, peer.Seen{}, err
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		r := bufio.NewReader(c)
		var seen peer.Seen
		if _, err = c.Write([]byte("x")); err == nil {
			var line string
			if line, err = r.ReadString('\n'); err == nil {
				err = json.Unmarshal([]byte(line), &seen)
			}
		}
		if err == nil {
			_, err = r.ReadByte() // the echo
		}
		if err != nil {
			c.Close()
			return nil, nil, peer.Seen{}, err
		}
		return c, r, seen, nil
	}
	echoes := func(c net.Conn, r *bufio.Reader) bool {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return false
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(r, buf)
		return err == nil && string(buf) == "ping"
	}

	held, heldR, seen, err := open("80")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if !strings.HasSuffix(seen.Local, ":8080") || seen.Target != "web" {
		t.Fatalf("before the change a connection reached %s of %s", seen.Local, seen.Target)
	}

	var listeners struct {
		Listeners []struct{ ListenerArn string }
	}
	var groups struct {
		TargetGroups []struct{ TargetGroupArn, TargetGroupName string }
	}
	var lbs struct {
		LoadBalancers []struct{ LoadBalancerArn string }
	}
	elb.do(&lbs, "describe-load-balancers")
	elb.do(&listeners, "describe-listeners", "--load-balancer-arn", lbs.LoadBalancers[0].LoadBalancerArn)
	elb.do(&groups, "describe-target-groups", "--names", "blue")
	listener := listeners.Listeners[0].ListenerArn
	elb.refused("ValidationError", "modify-listener", "--listener-arn", listener, "--protocol", "UDP")
	elb.refused("TargetGroupNotFound", "modify-listener", "--listener-arn", listener, "--default-actions",
		"Type=forward,TargetGroupArn=arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/gone/0123456789abcdef")
	var modified struct {
		Listeners []struct {
			Port           int
			DefaultActions []struct{ TargetGroupArn string }
		}
	}
	elb.do(&modified, "modify-listener", "--listener-arn", listener, "--default-actions", "Type=forward,TargetGroupArn="+groups.TargetGroups[0].TargetGroupArn)
	if l := modified.Listeners; len(l) != 1 || l[0].Port != 80 || l[0].DefaultActions[0].TargetGroupArn != groups.TargetGroups[0].TargetGroupArn {
		t.Fatalf("modify-listener answered %+v", modified)
	}

	// New connections go to the new group once the forwarders have the
	// change (and its targets have passed a health check or are still
	// initial: NLB routes to those).
	waitUntil(t, 5*time.Second, "a new connection served by the blue group", func() bool {
		c, _, s, err := open("80")
		if err != nil {
			return false
		}
		c.Close()
		return strings.HasSuffix(s.Local, ":8081") && s.Target == "blue"
	})
	if !echoes(held, heldR) {
		t.Fatal("the connection made before the listener moved was cut")
	}

	// Another port: served there, refused on the old one.
	elb.do(nil, "modify-listener", "--listener-arn", listener, "--port", "81")
	waitUntil(t, 5*time.Second, "the listener on port 81", func() bool {
		c, _, s, err := open("81")
		if err != nil {
			return false
		}
		c.Close()
		return strings.HasSuffix(s.Local, ":8081")
	})
	if c, _, _, err := open("80"); err == nil {
		c.Close()
		t.Fatal("port 80 still answers after the listener moved to 81")
	}
	if !echoes(held, heldR) {
		t.Fatal("the connection made before the listener moved was cut by the port change")
	}
}
