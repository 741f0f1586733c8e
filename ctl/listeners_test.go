package ctl

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestModifyListenerMovesItsPortAndTargetGroupForTheForwarders: a
// listener's port and target group change in the model and in every AZ's
// forwarder snapshot (the ENIs' listeners); what ELBv2 refuses is refused
// and changes nothing.
func TestModifyListenerMovesItsPortAndTargetGroupForTheForwarders(t *testing.T) {
	demo := string(demoTopology(t))
	const at = "\nload_balancers:"
	if !strings.Contains(demo, at) {
		t.Fatal("the demo has no load_balancers section")
	}
	// A second target group of the provider's VPC, on another port.
	demo = strings.Replace(demo, at, `
  - name: blue
    vpc: provider
    protocol: TCP
    port: 8081
    targets:
      - ip: 198.19.1.10
`+at, 1)
	s := &State{}
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptEndpoint("web"); err != nil {
		t.Fatal(err)
	}
	lb := lbNamed(t, s, "web-nlb")
	owner, id := lb.OwnerID, lb.Listeners[0].ID
	var blue string
	for _, tg := range s.TargetGroups {
		if tg.Name == "blue" {
			blue = tg.ID
		}
	}
	listeners := func(az string) string {
		c := s.ForwarderConfig(az)
		var out []string
		for _, e := range c.ENIs {
			for _, l := range e.Listeners {
				out = append(out, strings.Join([]string{l.LoadBalancer, l.TargetGroup}, "/")+":"+strconv.Itoa(int(l.Port)))
			}
		}
		return strings.Join(out, ",")
	}
	if got := listeners("use1-az1"); got != "web-nlb/web:80" {
		t.Fatalf("before: %s", got)
	}

	var me *ModelError
	var nf *NotFoundError
	for _, c := range []struct {
		name, protocol string
		port           int
		tg             string
		is             func(error) bool
	}{
		{"UDP", "UDP", 0, "", func(err error) bool { return errors.As(err, &me) }},
		{"a port out of range", "", 70000, "", func(err error) bool { return errors.As(err, &me) }},
		{"an unknown target group", "", 0, "0123456789abcdef", func(err error) bool { return errors.As(err, &nf) && nf.Kind == "TargetGroup" }},
	} {
		if _, _, err := s.ModifyListener(owner, id, c.protocol, c.port, c.tg); !c.is(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if got := listeners("use1-az1"); got != "web-nlb/web:80" {
		t.Fatalf("after the refusals: %s", got)
	}
	if _, _, err := s.ModifyListener("444455556666", id, "", 81, ""); err == nil {
		t.Error("another account changed the provider's listener")
	}

	if _, l, err := s.ModifyListener(owner, id, "TCP", 81, blue); err != nil || l.Port != 81 || l.TargetGroup != "blue" {
		t.Fatalf("modify: %+v, %v", l, err)
	}
	s.refreshPorts()
	for _, az := range []string{"use1-az1", "use1-az2"} {
		if got := listeners(az); got != "web-nlb/blue:81" {
			t.Fatalf("%s's forwarder after the modify: %s", az, got)
		}
	}
	if ports := s.Endpoints[0].Ports; len(ports) != 1 || ports[0] != 81 {
		t.Fatalf("the endpoint's ports after the modify: %v", ports)
	}
	// Only the port: the group stays.
	if _, l, err := s.ModifyListener(owner, id, "", 80, ""); err != nil || l.Port != 80 || l.TargetGroup != "blue" {
		t.Fatalf("modify of the port alone: %+v, %v", l, err)
	}
}
