package ctl

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// The operations the AWS-compatible API calls, one resource at a time, each
// on behalf of a caller (an account): the same model and rules as the
// topology file's, with the checks of who may do what.

// AccountByKey finds the account an access key belongs to.
func (s *State) AccountByKey(keyID string) (Account, bool) {
	for _, a := range s.Accounts {
		if a.AccessKeyID == keyID && keyID != "" {
			return a, true
		}
	}
	return Account{}, false
}

// giveKeys gives every account without keys the ones it had in old, or new
// ones.
func (s *State) giveKeys(old *State) {
	for i := range s.Accounts {
		a := &s.Accounts[i]
		if a.AccessKeyID != "" {
			continue
		}
		for _, o := range old.Accounts {
			if o.ID == a.ID && o.AccessKeyID != "" {
				a.AccessKeyID, a.SecretAccessKey = o.AccessKeyID, o.SecretAccessKey
			}
		}
		if a.AccessKeyID == "" {
			a.AccessKeyID, a.SecretAccessKey = "AKIA"+randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
		}
	}
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// NotFoundError is an operation on a resource that does not exist (or
// that the caller may not see); Kind is the resource's kind as AWS names
// it in its error codes (VpcEndpointId, VpcEndpointServiceId, ...).
type NotFoundError struct {
	Kind, ID string
}

func (e *NotFoundError) Error() string {
	if e.Kind == "PrefixListID" {
		return fmt.Sprintf("The prefix list ID '%s' does not exist", e.ID)
	}
	return fmt.Sprintf("The %s '%s' does not exist", e.Kind, e.ID)
}

// UnauthorizedError is an operation the caller's account may not make.
type UnauthorizedError struct{ Msg string }

func (e *UnauthorizedError) Error() string { return e.Msg }

// RootARN is an account's root principal.
func RootARN(account string) string { return "arn:aws:iam::" + account + ":root" }

// ServiceByID finds a service by its id.
func (s *State) ServiceByID(id string) (*ServiceState, bool) {
	for i := range s.Services {
		if s.Services[i].ID == id {
			return &s.Services[i], true
		}
	}
	return nil, false
}

// ownedService finds a service its owner acts on.
func (s *State) ownedService(caller, id string) (*ServiceState, error) {
	svc, ok := s.ServiceByID(id)
	if !ok || svc.OwnerID != caller {
		return nil, &NotFoundError{"VpcEndpointServiceId", id}
	}
	return svc, nil
}

// EndpointByID finds an endpoint by its id.
func (s *State) EndpointByID(id string) (*EndpointState, bool) {
	for i := range s.Endpoints {
		if s.Endpoints[i].ID == id {
			return &s.Endpoints[i], true
		}
	}
	return nil, false
}

// ConnectionVerb is a provider's answer to connection requests.
type ConnectionVerb string

const (
	Accept ConnectionVerb = "accept"
	Reject ConnectionVerb = "reject"
)

// AnswerConnection accepts or rejects an endpoint's connection to a
// service the caller owns.
func (s *State) AnswerConnection(caller, serviceID, endpointID string, verb ConnectionVerb) error {
	svc, err := s.ownedService(caller, serviceID)
	if err != nil {
		return err
	}
	e, ok := s.EndpointByID(endpointID)
	if !ok || e.ServiceID != svc.ID {
		return &NotFoundError{"VpcEndpointId", endpointID}
	}
	if verb == Accept {
		return s.AcceptEndpoint(e.ID)
	}
	return s.RejectEndpoint(e.ID)
}

// DeleteOwnEndpoint deletes an endpoint of the caller's.
func (s *State) DeleteOwnEndpoint(caller, id string) error {
	e, ok := s.EndpointByID(id)
	if !ok || e.OwnerID != caller {
		return &NotFoundError{"VpcEndpointId", id}
	}
	return s.DeleteEndpoint(id)
}

// ModifyPermissions adds and removes allowed principals of a service the
// caller owns. Removing one cuts no connection already accepted.
func (s *State) ModifyPermissions(caller, serviceID string, add, remove []string) error {
	svc, err := s.ownedService(caller, serviceID)
	if err != nil {
		return err
	}
	for _, p := range append(append([]string{}, add...), remove...) {
		if p != "*" && !principalRe.MatchString(p) {
			return refuse("%q is not a principal ARN (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME) or *", p)
		}
	}
	for _, p := range remove {
		if !slices.Contains(svc.AllowedPrincipals, p) {
			return refuse("principal %s is not allowed on service %s, so it cannot be removed", p, svc.ID)
		}
	}
	svc.AllowedPrincipals = slices.DeleteFunc(svc.AllowedPrincipals, func(p string) bool { return slices.Contains(remove, p) })
	for _, p := range add {
		if !slices.Contains(svc.AllowedPrincipals, p) {
			svc.AllowedPrincipals = append(svc.AllowedPrincipals, p)
		}
	}
	return nil
}

// EndpointRequest is what CreateVpcEndpoint asks for.
type EndpointRequest struct {
	VPCID           string
	SecurityGroups  []string
	DNSRecordIPType string
	PolicyDocument  string
	ServiceName     string
	SubnetIDs       []string
	IPAddressType   string // ipv4 (default), ipv6, dualstack
	// Addresses chosen per subnet (SubnetConfigurations), by subnet id.
	IPv4, IPv6 map[string]string
	// Region is the Region the request was made in (its signing scope;
	// "" is the home Region), ServiceRegion the service's when it is
	// another (cross-Region access).
	Region, ServiceRegion string
}

// subnetENI makes endpoint e's ENI in subnet id of vpc, e's VPC: an
// endpoint has one subnet per Availability Zone, in an AZ its service is
// offered in (any AZ for a cross-Region endpoint), and an address of each
// family its IP address type takes (v4 and v6 if chosen, or the subnet's
// next free ones).
func (s *State) subnetENI(vpc *VPCState, svc *ServiceState, e *EndpointState, id, v4, v6 string) (ENIState, error) {
	sn, ok := vpc.subnet(id)
	if !ok {
		return ENIState{}, &NotFoundError{"SubnetID", id}
	}
	for _, other := range e.ENIs {
		if other.AZ == sn.AZ {
			return ENIState{}, refuse("an endpoint takes one subnet per Availability Zone: %s and %s are both in %s (%s)", other.SubnetID, id, s.AZName(sn.AZ), sn.AZ)
		}
	}
	if !e.crossRegion() && !s.serviceAZs(svc)[sn.AZ] {
		return ENIState{}, refuse("the endpoint service %s is not available in %s (%s), the Availability Zone of subnet %s", svc.ServiceName, s.AZName(sn.AZ), sn.AZ, id)
	}
	if e.IPAddressType != "ipv4" && sn.IPv6CIDR == "" {
		return ENIState{}, refuse("subnet %s has no IPv6 range: a %s endpoint needs one", id, e.IPAddressType)
	}
	eni := ENIState{ID: newID("eni-"), AZ: sn.AZ, Subnet: sn.Name, SubnetID: sn.ID, Netns: vpc.Netns}
	eni.Tun = eni.ID[:15]
	var err error
	if e.IPAddressType != "ipv6" {
		if eni.IP, err = s.allocateAddr(sn, v4, false); err != nil {
			return ENIState{}, err
		}
	}
	if e.IPAddressType != "ipv4" {
		if eni.IPv6, err = s.allocateAddr(sn, v6, true); err != nil {
			return ENIState{}, err
		}
	}
	return eni, nil
}

// SetEndpointSubnets adds subnets to an endpoint of the caller's and
// removes others, as ModifyVpcEndpoint does: an added subnet gets an ENI
// (subnetENI), a removed one's ENI goes with its flows. An available
// endpoint is pending again until every forwarder carries the change, as
// after a consumer's modification in AWS; it carries traffic meanwhile.
func (s *State) SetEndpointSubnets(e *EndpointState, add, remove []string) error {
	for _, id := range remove {
		if !slices.ContainsFunc(e.ENIs, func(n ENIState) bool { return n.SubnetID == id }) {
			return refuse("subnet %s is not one of endpoint %s's", id, e.ID)
		}
		if slices.Contains(add, id) {
			return refuse("subnet %s is both added and removed", id)
		}
	}
	e.ENIs = slices.DeleteFunc(e.ENIs, func(n ENIState) bool { return slices.Contains(remove, n.SubnetID) })
	if len(add) > 0 {
		vpc, err := s.ownedVPC(e.OwnerID, e.VPCID)
		if err != nil {
			return err
		}
		svc, ok := s.ServiceByID(e.ServiceID)
		if !ok {
			return refuse("endpoint %s's service %s is gone", e.ID, e.ServiceID)
		}
		for _, id := range add {
			if slices.ContainsFunc(e.ENIs, func(n ENIState) bool { return n.SubnetID == id }) {
				return refuse("subnet %s is already one of endpoint %s's", id, e.ID)
			}
			eni, err := s.subnetENI(vpc, svc, e, id, "", "")
			if err != nil {
				return err
			}
			e.ENIs = append(e.ENIs, eni)
		}
	}
	if len(e.ENIs) == 0 {
		return refuse("an interface endpoint needs at least one subnet: endpoint %s would have none", e.ID)
	}
	if (len(add) > 0 || len(remove) > 0) && e.State == snapshot.StateAvailable {
		e.State = snapshot.StatePending
	}
	return nil
}

// CreateEndpoint creates an interface endpoint in a VPC of the caller's to
// a service the caller may see: a connection request, pendingAcceptance
// when the service requires acceptance, available otherwise.
func (s *State) CreateEndpoint(caller string, req EndpointRequest) (*EndpointState, error) {
	var vpc *VPCState
	for i := range s.VPCs {
		if s.VPCs[i].ID == req.VPCID && s.VPCs[i].OwnerID == caller {
			vpc = &s.VPCs[i]
		}
	}
	if vpc == nil {
		return nil, &NotFoundError{"VpcID", req.VPCID}
	}
	var svc *ServiceState
	for i := range s.Services {
		if s.Services[i].ServiceName == req.ServiceName {
			svc = &s.Services[i]
		}
	}
	principal := RootARN(caller)
	if svc == nil || !PrincipalAllowed(svc.AllowedPrincipals, principal) {
		// A service the caller may not use is one it cannot see.
		return nil, &NotFoundError{"ServiceName", req.ServiceName}
	}
	typ := req.IPAddressType
	if typ == "" {
		typ = "ipv4"
	}
	if typ != "ipv4" && typ != "ipv6" && typ != "dualstack" {
		return nil, refuse("IpAddressType %q is not ipv4, ipv6 or dualstack", typ)
	}
	if typ != "ipv4" && !slices.Contains(svc.SupportedIPAddressTypes, "ipv6") {
		return nil, refuse("the endpoint service %s does not support the IP address type %s: its load balancers are not dualstack", svc.ServiceName, typ)
	}
	if len(req.SubnetIDs) == 0 {
		return nil, refuse("an interface endpoint needs at least one subnet (SubnetId)")
	}
	region, host := cmpOr(req.Region, s.Region), cmpOr(svc.Region, s.Region)
	if cmpOr(vpc.Region, s.Region) != region {
		return nil, &NotFoundError{"VpcID", req.VPCID} // a VPC of another Region
	}
	cross := region != host
	switch {
	case req.ServiceRegion != "" && req.ServiceRegion != host:
		return nil, refuse("the endpoint service %s is in %s, not in ServiceRegion %s", svc.ServiceName, host, req.ServiceRegion)
	case cross && req.ServiceRegion == "":
		return nil, &NotFoundError{"ServiceName", req.ServiceName} // not in this Region: ServiceRegion says where
	case cross && !slices.Contains(svc.SupportedRegions, region):
		return nil, refuse("the endpoint service %s (in %s) does not support Region %s", svc.ServiceName, host, region)
	}
	if cross {
		if err := s.mayMultiRegion(caller, KeyServiceRegion, host); err != nil {
			return nil, err
		}
	}
	count := 0
	for _, e := range s.Endpoints {
		if e.VPCID == vpc.ID {
			count++
		}
	}
	if count >= MaxEndpointsPerVPC {
		return nil, &QuotaError{Msg: fmt.Sprintf("The maximum number of interface endpoints per VPC (%d) has been reached in %s", MaxEndpointsPerVPC, vpc.ID)}
	}
	e := EndpointState{
		ID: newID("vpce-"), Name: "", OwnerID: caller, Principal: principal, Origin: "api", Created: time.Now().UTC(),
		Service: svc.ServiceName, ServiceID: svc.ID, VPC: vpc.Name, VPCID: vpc.ID,
		State: snapshot.StatePending, IPAddressType: typ, Ports: s.servicePorts(svc),
		Region: region, ServiceRegion: host,
	}
	e.Name = e.ID
	if svc.AcceptanceRequired {
		e.State = snapshot.StatePendingAcceptance
	}
	var err error
	for _, id := range req.SubnetIDs {
		eni, err := s.subnetENI(vpc, svc, &e, id, req.IPv4[id], req.IPv6[id])
		if err != nil {
			return nil, err
		}
		e.ENIs = append(e.ENIs, eni)
	}
	groups := req.SecurityGroups
	if g := s.DefaultGroup(vpc.Name); len(groups) == 0 && g != nil {
		groups = []string{g.ID} // as EC2: the VPC's default group
	}
	if err := s.SetEndpointGroups(caller, &e, groups, nil); err != nil {
		return nil, err
	}
	if e.DNSRecordIPType, err = dnsRecordType(typ, req.DNSRecordIPType); err != nil {
		return nil, err
	}
	if err := SetPolicy(&e, req.PolicyDocument); err != nil {
		return nil, err
	}
	s.Endpoints = append(s.Endpoints, e)
	return &s.Endpoints[len(s.Endpoints)-1], nil
}

// MaxEndpointsPerVPC is AWS's quota of interface endpoints per VPC.
const MaxEndpointsPerVPC = 50

// QuotaError is a request over a quota.
type QuotaError struct{ Msg string }

func (e *QuotaError) Error() string { return e.Msg }

func (v *VPCState) subnet(id string) (SubnetState, bool) {
	for _, sn := range v.Subnets {
		if sn.ID == id {
			return sn, true
		}
	}
	return SubnetState{}, false
}

// serviceAZs are the AZs in which a service's load balancers have nodes.
func (s *State) serviceAZs(svc *ServiceState) map[string]bool {
	azs := map[string]bool{}
	for _, lb := range s.LoadBalancers {
		if slices.Contains(svc.LoadBalancers, lb.Name) {
			for _, n := range lb.Nodes {
				azs[n.AZ] = true
			}
		}
	}
	return azs
}

// ServiceAZs lists them sorted.
func (s *State) ServiceAZs(svc *ServiceState) []string {
	var out []string
	for az := range s.serviceAZs(svc) {
		out = append(out, az)
	}
	slices.Sort(out)
	return out
}

// servicePorts are the listener ports of a service's load balancers.
func (s *State) servicePorts(svc *ServiceState) []int {
	var ports []int
	for _, lb := range s.LoadBalancers {
		if slices.Contains(svc.LoadBalancers, lb.Name) {
			for _, l := range lb.Listeners {
				if !slices.Contains(ports, l.Port) {
					ports = append(ports, l.Port)
				}
			}
		}
	}
	slices.Sort(ports)
	return ports
}

// allocateAddr takes want (if given) or the first free address of a
// subnet: not reserved, not held by the subnet's host, a load-balancer
// node, a target or another ENI.
func (s *State) allocateAddr(sn SubnetState, want string, v6 bool) (string, error) {
	cidr := sn.CIDR
	if v6 {
		cidr = sn.IPv6CIDR
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", refuse("subnet %s has no usable range %q", sn.ID, cidr)
	}
	used := map[string]bool{sn.HostIP: true, sn.HostIPv6: true}
	for _, lb := range s.LoadBalancers {
		for _, n := range lb.Nodes {
			used[n.IP] = true
		}
	}
	for _, t := range s.Targets {
		used[t.IP] = true
	}
	for _, e := range s.Endpoints {
		for _, eni := range e.ENIs {
			used[eni.IP], used[eni.IPv6] = true, true
		}
	}
	if want != "" {
		a, err := netip.ParseAddr(want)
		switch {
		case err != nil:
			return "", refuse("%q is not an IP address", want)
		case !pfx.Contains(a):
			return "", refuse("address %s is not in subnet %s (%s)", want, sn.ID, cidr)
		case reserved(pfx, a):
			return "", refuse("address %s is reserved: AWS keeps the first four and the last address of subnet %s", want, sn.ID)
		case used[a.String()]:
			return "", refuse("address %s of subnet %s is in use", want, sn.ID)
		}
		return a.String(), nil
	}
	for a := pfx.Masked().Addr(); pfx.Contains(a); a = a.Next() {
		if !reserved(pfx, a) && !used[a.String()] {
			return a.String(), nil
		}
	}
	return "", refuse("subnet %s (%s) has no free address left", sn.ID, cidr)
}

// DNSNames are an endpoint's regional name and one zonal name per AZ, as
// AWS makes them (the suffix is the endpoint's own; a zonal name has the
// AZ's name, us-east-1a, not its id).
func (s *State) DNSNames(e EndpointState) []string {
	// A cross-Region endpoint's names carry its service's Region.
	suffix := strings.TrimPrefix(e.ID, "vpce-")[:8]
	base := fmt.Sprintf("%s.%s.vpce.amazonaws.com", e.ServiceID, cmpOr(e.ServiceRegion, s.Region))
	out := []string{fmt.Sprintf("%s-%s.%s", e.ID, suffix, base)}
	for _, eni := range e.ENIs {
		out = append(out, fmt.Sprintf("%s-%s-%s.%s", e.ID, suffix, s.AZName(eni.AZ), base))
	}
	return out
}

// dnsRecordType checks an endpoint's DNS record IP type against its IP
// address type: an ipv4 endpoint's names get A records, an ipv6 one's
// AAAA, a dualstack one's either or both.
func dnsRecordType(ipType, want string) (string, error) {
	if want == "" {
		return ipType, nil
	}
	ok := map[string][]string{"ipv4": {"ipv4"}, "ipv6": {"ipv6"}, "dualstack": {"ipv4", "ipv6", "dualstack"}}[ipType]
	if !slices.Contains(ok, want) {
		return "", refuse("DnsRecordIpType %s does not fit an %s endpoint (it takes %s)", want, ipType, strings.Join(ok, ", "))
	}
	return want, nil
}

// MaxPolicyLength is AWS's limit on an endpoint policy.
const MaxPolicyLength = 20480

// SetPolicy stores an endpoint policy: JSON of at most 20,480 characters.
func SetPolicy(e *EndpointState, doc string) error {
	if doc == "" {
		return nil
	}
	if len(doc) > MaxPolicyLength {
		return refuse("the policy document has %d characters; an endpoint policy takes at most %d", len(doc), MaxPolicyLength)
	}
	if !json.Valid([]byte(doc)) {
		return refuse("the policy document is not JSON")
	}
	e.PolicyDocument = doc
	return nil
}

// crossRegion reports whether an endpoint reaches a service of another
// Region.
func (e EndpointState) crossRegion() bool {
	return e.ServiceRegion != "" && e.Region != "" && e.ServiceRegion != e.Region
}

// SetPayerResponsibility is ModifyVpcEndpointServicePayerResponsibility:
// ServiceOwner, the one value EC2 takes.
func (s *State) SetPayerResponsibility(caller, id, payer string) error {
	svc, err := s.ownedService(caller, id)
	if err != nil {
		return err
	}
	if payer != "ServiceOwner" {
		return refuse("PayerResponsibility %q: the one value is ServiceOwner", payer)
	}
	svc.PayerResponsibility = payer
	return nil
}
