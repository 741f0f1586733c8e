package ctl

import (
	"bytes"
	"strings"
	"testing"
)

// fabric status's table lists the names a consumer reaches each endpoint
// by: its regional name (every AZ), a zonal name per AZ, and its service's
// private DNS name once enabled.
func TestTheStatusTableListsEachEndpointsDNSNames(t *testing.T) {
	demo := strings.Replace(string(demoTopology(t)), "    load_balancers: [web-nlb]\n", "    load_balancers: [web-nlb]\n    private_dns_name: api.example.com\n", 1)
	s := &State{}
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	r := &Report{Services: s.Services}
	for _, e := range s.Endpoints {
		e.DNSNames = s.DNSNames(e)
		r.Endpoints = append(r.Endpoints, e)
	}
	e := r.Endpoints[0]
	rows := func() []string {
		var out bytes.Buffer
		r.WriteTable(&out)
		var got []string
		for _, line := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == e.ID && strings.Contains(line, ".vpce.amazonaws.com") || strings.Contains(line, "(private DNS)") {
				got = append(got, strings.Join(f[1:], " "))
			}
		}
		return got
	}
	want := []string{"all " + e.DNSNames[0], "use1-az1 " + e.DNSNames[1], "use1-az2 " + e.DNSNames[2]}
	if got := rows(); strings.Join(got, "\n") != strings.Join(want, "\n") || !strings.Contains(want[1], "-us-east-1a.") {
		t.Fatalf("DNS rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r.Endpoints[0].PrivateDNSEnabled = true
	s.Verified(s.Services[0].ID, true)
	r.Services = s.Services
	if got := rows(); len(got) != 4 || got[3] != "all api.example.com (private DNS)" {
		t.Fatalf("DNS rows with private DNS enabled:\n%s", strings.Join(got, "\n"))
	}
}

// fabric status lists, per load balancer node, whether the load balancer
// balances across zones and which listener sends which port where, as
// both can now change through the API.
func TestTheStatusTableShowsEachLoadBalancersCrossZoneAndListeners(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	r := &Report{LoadBalancers: s.LoadBalancers}
	rows := func() []string {
		var out bytes.Buffer
		r.WriteTable(&out)
		var got []string
		for _, line := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "web-nlb" {
				got = append(got, strings.Join(f, " "))
			}
		}
		return got
	}
	want := "web-nlb use1-az1 198.19.1.5 off 80->web -,web-nlb use1-az2 198.19.2.5 off 80->web -"
	if got := strings.Join(rows(), ","); got != want {
		t.Fatalf("load balancer rows: %s, want %s", got, want)
	}
	lb := &r.LoadBalancers[0]
	if err := s.SetLoadBalancerAttributes(lb.OwnerID, lb.ID, map[string]string{"load_balancing.cross_zone.enabled": "true"}); err != nil {
		t.Fatal(err)
	}
	r.LoadBalancers = s.LoadBalancers
	r.LoadBalancers[0].Listeners = nil
	if got := rows(); len(got) != 2 || got[0] != "web-nlb use1-az1 198.19.1.5 on - -" {
		t.Fatalf("load balancer rows with cross-zone on and no listener: %v", got)
	}
}
