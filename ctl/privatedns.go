package ctl

import (
	"fmt"
	"slices"
	"strings"

	"pvlink.dev/pvlink/ctl/dns"
)

// Private DNS names: a provider gives its service a name of its own
// domain; consumers may answer it with their endpoint's ENIs, inside their
// VPC, once the provider has shown it owns the domain: pvlink hands out a
// TXT record (name and value, as AWS's PrivateDnsNameConfiguration), the
// provider publishes it in the fabric's public DNS, and a verification
// finds it there over DNS. If verification is later lost, new endpoints
// cannot enable the name and existing ones keep it (the seed guide's
// words).

// Private DNS name states, as EC2 spells them.
const (
	DNSPendingVerification = "pendingVerification"
	DNSVerified            = "verified"
	DNSFailed              = "failed"
)

// PrivateDNSName is a service's private DNS name and its verification
// record.
type PrivateDNSName struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// TXTName (under Name's domain) must hold TXTValue.
	TXTName  string `json:"txt_name"`
	TXTValue string `json:"txt_value"`
}

// PublicZoneState is a zone of the fabric's public DNS and its records.
type PublicZoneState struct {
	Name    string         `json:"name"`
	OwnerID string         `json:"owner_id"`
	Records []PublicRecord `json:"records"`
}

// SetPrivateDNSName gives a service a private DNS name (or takes it away
// with ""): a new name is pendingVerification with a fresh TXT record.
func (s *State) SetPrivateDNSName(svc *ServiceState, name string) error {
	if name == "" {
		for _, e := range s.Endpoints {
			if e.ServiceID == svc.ID && e.PrivateDNSEnabled {
				return refuse("endpoint %s uses the private DNS name of %s: it cannot be removed while endpoints use it", e.ID, svc.ID)
			}
		}
		svc.PrivateDNS = nil
		return nil
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if !dnsNameRe.MatchString(name) || strings.HasSuffix(name, "amazonaws.com") {
		return refuse("%q is not a DNS name a provider may own", name)
	}
	if svc.PrivateDNS != nil && svc.PrivateDNS.Name == name {
		return nil
	}
	svc.PrivateDNS = &PrivateDNSName{Name: name, State: DNSPendingVerification,
		TXTName: "_" + strings.ToLower(randomString(20, "abcdefghijklmnopqrstuvwxyz0123456789")), TXTValue: "vpce:" + randomString(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")}
	return nil
}

// VerificationNames are where a service's TXT record may be published: the
// record's name under the private name's domain, or at the domain itself,
// for the name and each parent domain up to (not including) the TLD.
func (p *PrivateDNSName) VerificationNames() []string {
	var out []string
	labels := strings.Split(p.Name, ".")
	for i := 0; i+1 < len(labels); i++ {
		domain := strings.Join(labels[i:], ".")
		out = append(out, p.TXTName+"."+domain, domain)
	}
	return out
}

// Verified records the outcome of a verification.
func (s *State) Verified(serviceID string, ok bool) error {
	svc, found := s.ServiceByID(serviceID)
	if !found || svc.PrivateDNS == nil {
		return refuse("service %s has no private DNS name to verify", serviceID)
	}
	if ok {
		svc.PrivateDNS.State = DNSVerified
	} else {
		svc.PrivateDNS.State = DNSFailed
	}
	return nil
}

// EnablePrivateDNS turns private DNS on or off for an endpoint: on only if
// its service's name is verified and no other endpoint in the VPC answers
// the same name.
func (s *State) EnablePrivateDNS(e *EndpointState, on bool) error {
	if !on {
		e.PrivateDNSEnabled = false
		return nil
	}
	svc, ok := s.ServiceByID(e.ServiceID)
	if !ok || svc.PrivateDNS == nil {
		return refuse("service %s has no private DNS name", e.ServiceID)
	}
	if svc.PrivateDNS.State != DNSVerified {
		return refuse("the private DNS name %s of service %s is %s: it must be verified before an endpoint can enable it", svc.PrivateDNS.Name, svc.ID, svc.PrivateDNS.State)
	}
	if err := s.privateDNSRefusal(e.VPCID); err != nil {
		return err
	}
	for _, o := range s.Endpoints {
		if o.ID != e.ID && o.VPCID == e.VPCID && o.PrivateDNSEnabled && o.State != "deleting" {
			if os, ok := s.ServiceByID(o.ServiceID); ok && os.PrivateDNS != nil && os.PrivateDNS.Name == svc.PrivateDNS.Name {
				return &DuplicateError{"PrivateDnsName", fmt.Sprintf("private-dns-enabled cannot be set because there is already a conflicting DNS domain for %s in the VPC %s (endpoint %s)", svc.PrivateDNS.Name, e.VPCID, o.ID)}
			}
		}
	}
	e.PrivateDNSEnabled = true
	return nil
}

// SetPublicRecord sets (or, with an empty value, deletes) a record in a
// public zone of the caller's, making the zone if it is new.
func (s *State) SetPublicRecord(caller, zone string, r PublicRecord) error {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	r.Name = strings.TrimSuffix(strings.ToLower(r.Name), ".")
	if !dnsNameRe.MatchString(zone) {
		return refuse("%q is not a zone name", zone)
	}
	if r.Name != zone && !strings.HasSuffix(r.Name, "."+zone) {
		return refuse("record %s is not in zone %s", r.Name, zone)
	}
	if !slices.Contains([]string{"A", "AAAA", "TXT"}, r.Type) {
		return refuse("record type %q: pvlink's public zones hold A, AAAA and TXT records", r.Type)
	}
	i := slices.IndexFunc(s.PublicZones, func(z PublicZoneState) bool { return z.Name == zone })
	if i < 0 {
		s.PublicZones = append(s.PublicZones, PublicZoneState{Name: zone, OwnerID: caller})
		i = len(s.PublicZones) - 1
	}
	z := &s.PublicZones[i]
	if z.OwnerID != caller {
		return &UnauthorizedError{fmt.Sprintf("zone %s belongs to account %s", zone, z.OwnerID)}
	}
	z.Records = slices.DeleteFunc(z.Records, func(o PublicRecord) bool { return o.Name == r.Name && o.Type == r.Type })
	if r.Value != "" {
		z.Records = append(z.Records, r)
	}
	return nil
}

// endpointZone is the zone of interface endpoints' regional and zonal
// names.
const endpointZone = "vpce.amazonaws.com."

// PublicRecords are the public zones as DNS data, and the endpoints'
// regional and zonal names, which AWS publishes in public DNS ("these DNS
// names are publicly resolvable"; from outside the VPC they still give the
// ENIs' private addresses). healthy says which AZs carry traffic.
func (s *State) PublicRecords(healthy func(az string) bool) *dns.Records {
	out := dns.NewRecords()
	s.endpointRecords(out, healthy)
	for _, z := range s.PublicZones {
		out.Zones = append(out.Zones, dns.Name(z.Name))
		for _, r := range z.Records {
			n := dns.Name(r.Name)
			switch r.Type {
			case "TXT":
				out.TXT[n] = append(out.TXT[n], r.Value)
			case "A", "AAAA":
				if a, err := parseAddr(r.Value); err == nil {
					if a.Is4() {
						out.A[n] = append(out.A[n], a)
					} else {
						out.AAAA[n] = append(out.AAAA[n], a)
					}
				}
			}
		}
	}
	return out
}

// VPCRecords are the names a VPC's resolver answers: every endpoint of
// the fabric, the VPC's or not (the names are public), by its regional
// name (the ENIs of the AZs that carry traffic, healthy says which) and
// its zonal names (one ENI each), A and/or AAAA by its DNS record IP type;
// and the verified private DNS names the VPC's own endpoints enable, while
// its DNS hostnames are on. With its DNS support
// off it is nil: the resolver answers nothing (vpcdns.go).
func (s *State) VPCRecords(vpcID string, healthy func(az string) bool) *dns.Records {
	vpc := s.vpcByID(vpcID)
	if vpc != nil && vpc.DNSSupportOff {
		return nil // no answer at all
	}
	out := dns.NewRecords()
	// Every endpoint's regional and zonal names, the VPC's and others':
	// they are public.
	s.endpointRecords(out, healthy)
	for _, e := range s.Endpoints {
		if e.VPCID != vpcID || e.State == "deleting" || !e.PrivateDNSEnabled {
			continue
		}
		if svc, ok := s.ServiceByID(e.ServiceID); ok && svc.PrivateDNS != nil && svc.PrivateDNS.State != "" && (vpc == nil || vpc.PrivateDNSReady()) {
			// Verification lost later keeps existing endpoints' names.
			out.Zones = append(out.Zones, dns.Name(svc.PrivateDNS.Name))
			for _, eni := range upENIs(e, healthy) {
				addENI(out, e, svc.PrivateDNS.Name, eni)
			}
		}
	}
	return out
}

// endpointRecords adds the regional and zonal names of every endpoint to
// out, in the zone endpointZone.
func (s *State) endpointRecords(out *dns.Records, healthy func(az string) bool) {
	out.Zones = append(out.Zones, endpointZone)
	for _, e := range s.Endpoints {
		if e.State == "deleting" {
			continue
		}
		names := s.DNSNames(e)
		for i, eni := range e.ENIs {
			addENI(out, e, names[i+1], eni)
		}
		for _, eni := range upENIs(e, healthy) {
			addENI(out, e, names[0], eni)
		}
	}
}

// upENIs are the ENIs of e a name that stands for all of them answers
// with: those of AZs that can carry traffic, unless none can (then all,
// as an NLB fails open).
func upENIs(e EndpointState, healthy func(az string) bool) []ENIState {
	var up []ENIState
	for _, eni := range e.ENIs {
		if healthy(eni.AZ) {
			up = append(up, eni)
		}
	}
	if len(up) == 0 {
		return e.ENIs
	}
	return up
}

// addENI adds an ENI's addresses under name, A and AAAA by the endpoint's
// DNS record IP type.
func addENI(out *dns.Records, e EndpointState, name string, eni ENIState) {
	typ := cmpOr(e.DNSRecordIPType, cmpOr(e.IPAddressType, "ipv4"))
	n := dns.Name(name)
	if typ != "ipv6" && eni.IP != "" {
		out.A[n] = append(out.A[n], mustAddr(eni.IP))
	}
	if typ != "ipv4" && eni.IPv6 != "" {
		out.AAAA[n] = append(out.AAAA[n], mustAddr(eni.IPv6))
	}
}
