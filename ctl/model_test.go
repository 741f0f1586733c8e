package ctl

import (
	"errors"
	"strings"
	"testing"

	"pvlink.dev/pvlink/ctl/dns"
	"pvlink.dev/pvlink/snapshot"
)

// applyText applies a topology (the demo, edited) to a model, as ctld's
// apply does.
func applyText(t *testing.T, s *State, text string) error {
	t.Helper()
	topo, err := ParseTopology("demo.yaml", []byte(text))
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	next := s.Clone()
	if err := next.ApplyTopology(topo, "demo.yaml"); err != nil {
		return err
	}
	*s = *next
	return nil
}

func TestOnlyAnAllowedPrincipalMayRequestAnEndpointAndRemovingItCutsNothing(t *testing.T) {
	demo := string(demoTopology(t))
	const allowed = `allowed_principals: ["arn:aws:iam::444455556666:root"]`
	if !strings.Contains(demo, allowed) {
		t.Fatal("the demo no longer allows the consumer account")
	}
	s := &State{}
	// Nobody allowed: the consumer's request is refused, nothing changes.
	err := applyText(t, s, strings.Replace(demo, allowed, "allowed_principals: []", 1))
	var me *ModelError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "principal arn:aws:iam::444455556666:root is not allowed to connect to endpoint service web") {
		t.Fatalf("an endpoint nobody allowed: %v", err)
	}
	if s.Name != "" {
		t.Fatal("a refused change left a model")
	}
	// A role of the consumer account is covered by the account's root.
	role := strings.Replace(demo, "    # principal: arn:aws:iam::444455556666:role/app", "    principal: arn:aws:iam::444455556666:role/app", 1)
	if err := applyText(t, s, role); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptEndpoint("web"); err != nil {
		t.Fatal(err)
	}
	if s.Endpoints[0].State != snapshot.StatePending {
		t.Fatalf("an accepted endpoint is %s, want pending until the host carries it", s.Endpoints[0].State)
	}
	s.Settle()
	if e := s.Endpoints[0]; e.Principal != "arn:aws:iam::444455556666:role/app" || e.OwnerID != "444455556666" || s.Services[0].OwnerID != "111122223333" {
		t.Fatalf("owners: endpoint %s by %s, service %s", e.OwnerID, e.Principal, s.Services[0].OwnerID)
	}
	// The provider removes the permission: the accepted endpoint stays
	// available; a second request by the same principal is refused.
	revoked := strings.Replace(role, allowed, "allowed_principals: []", 1)
	if err := applyText(t, s, revoked); err != nil {
		t.Fatalf("removing a principal: %v", err)
	}
	if st := s.Endpoints[0].State; st != snapshot.StateAvailable {
		t.Fatalf("after the principal was removed the endpoint is %s", st)
	}
	second := revoked + `  - name: web2
    vpc: consumer
    service: web
    subnet_configurations:
      - {subnet: consumer-az1, ipv4: 198.18.1.20}
`
	if err := applyText(t, s, second); err == nil || !strings.Contains(err.Error(), "endpoint web2: principal arn:aws:iam::444455556666:root is not allowed") {
		t.Fatalf("a new endpoint after the principal was removed: %v", err)
	}
}

func TestAPrincipalOutsideTheVPCsAccountIsRefused(t *testing.T) {
	demo := strings.Replace(string(demoTopology(t)), "    # principal: arn:aws:iam::444455556666:role/app", "    principal: arn:aws:iam::111122223333:role/app", 1)
	_, err := ParseTopology("demo.yaml", []byte(demo))
	if err == nil || !strings.Contains(err.Error(), "arn:aws:iam::111122223333:role/app is not in account consumer (444455556666), which owns VPC consumer") {
		t.Fatalf("a principal of the provider's account on the consumer's endpoint: %v", err)
	}
}

func TestApplyingTheSameTopologyAgainChangesNothing(t *testing.T) {
	s := &State{}
	demo := string(demoTopology(t))
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	// A prefix list is made through the API only; an apply keeps it.
	if _, err := s.CreatePrefixList(s.Accounts[0].ID, "office", "IPv4", 2, []PrefixListEntry{{CIDR: "198.18.7.0/24"}}); err != nil {
		t.Fatal(err)
	}
	again := s.Clone()
	if err := applyText(t, again, demo); err != nil {
		t.Fatal(err)
	}
	if !sameModel(s, again) || len(again.PrefixLists) != 1 {
		t.Fatalf("a second apply of the same topology changed the model (prefix lists %+v)", again.PrefixLists)
	}
	// An endpoint of the file has its creation time from the first apply
	// (AWS's CreationTimestamp), kept by the second.
	if c := s.Endpoints[0].Created; c.IsZero() || !again.Endpoints[0].Created.Equal(c) {
		t.Fatalf("the endpoint's creation time: %v, then %v", c, again.Endpoints[0].Created)
	}
	// So does the load balancer (AWS's CreatedTime).
	if c := s.LoadBalancers[0].Created; c.IsZero() || !again.LoadBalancers[0].Created.Equal(c) {
		t.Fatalf("the load balancer's creation time: %v, then %v", c, again.LoadBalancers[0].Created)
	}
	if err := again.AcceptEndpoint("web"); err != nil || sameModel(s, again) {
		t.Fatalf("an accept left the model the same (%v)", err)
	}
}

func TestPrivateDNSIsEnabledOnlyWhenVerifiedAndOncePerVPC(t *testing.T) {
	demo := strings.Replace(string(demoTopology(t)), "    load_balancers: [web-nlb]\n", "    load_balancers: [web-nlb]\n    private_dns_name: api.example.com\n", 1)
	demo = strings.Replace(demo, `allowed_principals: ["arn:aws:iam::444455556666:root"]`, `allowed_principals: ["*"]`, 1)
	s := &State{}
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	e := &s.Endpoints[0]
	if err := s.EnablePrivateDNS(e, true); err == nil || !strings.Contains(err.Error(), "pendingVerification: it must be verified") {
		t.Fatalf("enabling an unverified name: %v", err)
	}
	s.Verified(s.Services[0].ID, true)
	enabled := strings.Replace(demo, "    ip_address_type: ipv4\n    subnet_configurations:", "    ip_address_type: ipv4\n    private_dns_enabled: true\n    subnet_configurations:", 1)
	if err := applyText(t, s, enabled); err != nil || !s.Endpoints[0].PrivateDNSEnabled {
		t.Fatalf("enabling the verified name: %v", err)
	}
	// A second endpoint in the same VPC for the same name is refused.
	second := enabled + "  - name: web2\n    vpc: consumer\n    service: web\n    private_dns_enabled: true\n    subnet_configurations:\n      - {subnet: consumer-az1, ipv4: 198.18.1.20}\n"
	if err := applyText(t, s, second); err == nil || !strings.Contains(err.Error(), "already a conflicting DNS domain") {
		t.Fatalf("a second endpoint with the same private name in one VPC: %v", err)
	}
	// Verification lost: the enabled endpoint keeps it, a new one cannot.
	s.Verified(s.Services[0].ID, false)
	if !s.Endpoints[0].PrivateDNSEnabled {
		t.Fatal("losing verification turned the name off")
	}
	if recs := s.VPCRecords(s.Endpoints[0].VPCID, func(string) bool { return true }); len(recs.A[dns.Name("api.example.com")]) != 2 {
		t.Fatal("the enabled endpoint's private name stopped answering")
	}
}
