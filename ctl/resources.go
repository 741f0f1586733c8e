package ctl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// The API's operations on the provider's side and on the network itself:
// VPCs and subnets, load balancers, listeners, target groups and targets,
// endpoint services. Each acts for a caller (an account id) on what it
// owns, and keeps the rules the topology file is held to.

// DependencyError refuses to delete what something still stands on.
type DependencyError struct{ Msg string }

func (e *DependencyError) Error() string { return e.Msg }

// DuplicateError refuses a second resource of a kind under one name.
type DuplicateError struct{ Kind, Msg string }

func (e *DuplicateError) Error() string { return e.Msg }

func (s *State) ownedVPC(caller, id string) (*VPCState, error) {
	for i := range s.VPCs {
		if s.VPCs[i].ID == id && s.VPCs[i].OwnerID == caller {
			return &s.VPCs[i], nil
		}
	}
	return nil, &NotFoundError{"VpcID", id}
}

func parseBlock(cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, refuse("%q is not an IPv4 CIDR block", cidr)
	}
	if p.Masked() != p {
		return netip.Prefix{}, refuse("%s has host bits set (did you mean %s?)", cidr, p.Masked())
	}
	if p.Bits() < 16 || p.Bits() > 28 {
		return netip.Prefix{}, refuse("a CIDR block must be between /16 and /28, got /%d", p.Bits())
	}
	return p, nil
}

// CreateVPC makes a VPC (a namespace) of the caller's; with ipv6 it gets
// a /56 of the fd00::/8 range, as AWS gives a VPC a /56 of its own.
func (s *State) CreateVPC(caller, cidr string, ipv6 bool) (*VPCState, error) {
	if _, err := parseBlock(cidr); err != nil {
		return nil, err
	}
	id := newID("vpc-")
	name := "v" + id[4:12]
	// DNS support on and DNS hostnames off: CreateVpc's defaults.
	v := VPCState{Origin: "api", Name: name, ID: id, OwnerID: caller, Netns: NetnsName(s.Name, name), CIDR: cidr, DNSHostnamesOff: true}
	if ipv6 {
		// fd + 40 bits from the id: a /56 no other VPC of the fabric is
		// likely to share (they are separate namespaces anyway).
		h := id[4:14]
		p := netip.MustParsePrefix(fmt.Sprintf("fd%s:%s:%s00::/56", h[0:2], h[2:6], h[6:8]))
		v.IPv6CIDR = p.Masked().String() // canonical: no leading zeros
	}
	s.VPCs = append(s.VPCs, v)
	s.SecurityGroups = append(s.SecurityGroups, newDefaultGroup(v))
	return &s.VPCs[len(s.VPCs)-1], nil
}

// DeleteVPC deletes an empty VPC of the caller's.
func (s *State) DeleteVPC(caller, id string) error {
	v, err := s.ownedVPC(caller, id)
	if err != nil {
		return err
	}
	if len(v.Subnets) > 0 {
		return &DependencyError{fmt.Sprintf("The vpc '%s' has dependencies and cannot be deleted: it has %d subnets", id, len(v.Subnets))}
	}
	for _, g := range s.SecurityGroups {
		if g.VPC == v.Name && !g.Default {
			return &DependencyError{fmt.Sprintf("The vpc '%s' has dependencies and cannot be deleted: security group %s", id, g.ID)}
		}
	}
	name := v.Name
	s.VPCs = slices.DeleteFunc(s.VPCs, func(o VPCState) bool { return o.ID == id })
	// Its default group goes with it.
	s.SecurityGroups = slices.DeleteFunc(s.SecurityGroups, func(g SecurityGroupState) bool { return g.VPC == name })
	return nil
}

// CreateSubnet makes a subnet of a VPC in an AZ of the Region, with an
// IPv6 /64 of the VPC's if cidr6 is given. The namespace takes the
// subnet's first free addresses for itself.
func (s *State) CreateSubnet(caller, vpcID, cidr, cidr6, az string) (*SubnetState, error) {
	v, err := s.ownedVPC(caller, vpcID)
	if err != nil {
		return nil, err
	}
	p, err := parseBlock(cidr)
	if err != nil {
		return nil, err
	}
	if vp := netip.MustParsePrefix(v.CIDR); !vp.Contains(p.Addr()) || p.Bits() < vp.Bits() {
		return nil, refuse("The CIDR '%s' is invalid for VPC %s: it is not within %s", cidr, vpcID, v.CIDR)
	}
	for _, sn := range v.Subnets {
		if netip.MustParsePrefix(sn.CIDR).Overlaps(p) {
			return nil, &DuplicateError{"Subnet", fmt.Sprintf("The CIDR '%s' conflicts with another subnet (%s, %s)", cidr, sn.ID, sn.CIDR)}
		}
	}
	if azs := s.RegionAZs(cmpOr(v.Region, s.Region)); !slices.Contains(azs, az) {
		return nil, refuse("Availability Zone %q is not one of the Region's (%s)", az, strings.Join(azs, ", "))
	}
	id := newID("subnet-")
	sn := SubnetState{Name: "s" + id[7:15], ID: id, AZ: az, CIDR: cidr}
	if cidr6 != "" {
		p6, err := netip.ParsePrefix(cidr6)
		if v.IPv6CIDR == "" {
			return nil, refuse("VPC %s has no IPv6 range (create it with --amazon-provided-ipv6-cidr-block)", vpcID)
		}
		if vp6 := netip.MustParsePrefix(v.IPv6CIDR); err != nil || !p6.Addr().Is6() || p6.Bits() != 64 || !vp6.Contains(p6.Addr()) || p6.Masked() != p6 {
			return nil, refuse("The IPv6 CIDR '%s' is invalid for VPC %s: a subnet takes a /64 of %s", cidr6, vpcID, v.IPv6CIDR)
		}
		for _, o := range v.Subnets {
			if o.IPv6CIDR == p6.String() {
				return nil, &DuplicateError{"Subnet", fmt.Sprintf("The IPv6 CIDR '%s' conflicts with another subnet (%s)", cidr6, o.ID)}
			}
		}
		sn.IPv6CIDR = p6.String()
	}
	if sn.HostIP, err = s.allocateAddr(sn, "", false); err != nil {
		return nil, err
	}
	if sn.IPv6CIDR != "" {
		if sn.HostIPv6, err = s.allocateAddr(sn, "", true); err != nil {
			return nil, err
		}
	}
	v.Subnets = append(v.Subnets, sn)
	return &v.Subnets[len(v.Subnets)-1], nil
}

// DeleteSubnet deletes a subnet nothing stands in.
func (s *State) DeleteSubnet(caller, id string) error {
	for i := range s.VPCs {
		v := &s.VPCs[i]
		if v.OwnerID != caller {
			continue
		}
		sn, ok := v.subnet(id)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			for _, eni := range e.ENIs {
				if eni.SubnetID == id {
					return &DependencyError{fmt.Sprintf("The subnet '%s' has dependencies and cannot be deleted: endpoint %s has an ENI in it", id, e.ID)}
				}
			}
		}
		for _, lb := range s.LoadBalancers {
			for _, n := range lb.Nodes {
				if lb.VPC == v.Name && n.Subnet == sn.Name {
					return &DependencyError{fmt.Sprintf("The subnet '%s' has dependencies and cannot be deleted: load balancer %s has a node in it", id, lb.Name)}
				}
			}
		}
		for _, t := range s.Targets {
			if t.Netns == v.Netns && prefixContains(sn.CIDR, t.IP) {
				return &DependencyError{fmt.Sprintf("The subnet '%s' has dependencies and cannot be deleted: target %s of %s is in it", id, t.IP, t.TargetGroup)}
			}
		}
		v.Subnets = slices.DeleteFunc(v.Subnets, func(o SubnetState) bool { return o.ID == id })
		return nil
	}
	return &NotFoundError{"SubnetID", id}
}

// subnetByID finds a subnet of the caller's and its VPC.
func (s *State) subnetByID(caller, id string) (*VPCState, SubnetState, error) {
	for i := range s.VPCs {
		if s.VPCs[i].OwnerID != caller {
			continue
		}
		if sn, ok := s.VPCs[i].subnet(id); ok {
			return &s.VPCs[i], sn, nil
		}
	}
	return nil, SubnetState{}, &NotFoundError{"SubnetID", id}
}

// LoadBalancerByID finds a load balancer of the caller's by the id its
// ARN ends with.
func (s *State) LoadBalancerByID(caller, id string) (*LBState, bool) {
	for i := range s.LoadBalancers {
		if s.LoadBalancers[i].ID == id && s.LoadBalancers[i].OwnerID == caller {
			return &s.LoadBalancers[i], true
		}
	}
	return nil, false
}

// TargetGroupByID finds a target group of the caller's.
func (s *State) TargetGroupByID(caller, id string) (*TargetGroupState, bool) {
	for i := range s.TargetGroups {
		if s.TargetGroups[i].ID == id && s.TargetGroups[i].OwnerID == caller {
			return &s.TargetGroups[i], true
		}
	}
	return nil, false
}

// CreateLoadBalancer makes a Network Load Balancer with a node in each
// subnet (one per AZ, all in one VPC of the caller's); ipType is ipv4 or
// dualstack.
func (s *State) CreateLoadBalancer(caller, name, ipType string, subnetIDs []string) (*LBState, error) {
	if ipType == "" {
		ipType = "ipv4"
	}
	if ipType != "ipv4" && ipType != "dualstack" {
		return nil, refuse("IpAddressType %q is not ipv4 or dualstack", ipType)
	}
	if !lbNameRe.MatchString(name) {
		return nil, refuse("load balancer name %q: use up to 32 letters, digits and '-', not starting or ending with '-'", name)
	}
	if slices.ContainsFunc(s.LoadBalancers, func(lb LBState) bool { return lb.Name == name }) {
		return nil, &DuplicateError{"LoadBalancerName", "A load balancer with the same name '" + name + "' exists"}
	}
	if len(subnetIDs) == 0 {
		return nil, refuse("a load balancer needs at least one subnet")
	}
	lb := LBState{Origin: "api", State: LBProvisioning, IPAddressType: ipType, Name: name, ID: newHexID(16), OwnerID: caller, Created: time.Now().UTC()}
	for _, id := range subnetIDs {
		if err := s.addLBNode(caller, &lb, id); err != nil {
			return nil, err
		}
	}
	s.LoadBalancers = append(s.LoadBalancers, lb)
	return &s.LoadBalancers[len(s.LoadBalancers)-1], nil
}

// addLBNode gives lb a node in subnet id of the caller's: all of a load
// balancer's subnets are in one VPC, one per Availability Zone, and each
// node has an address of its subnet.
func (s *State) addLBNode(caller string, lb *LBState, id string) error {
	v, sn, err := s.subnetByID(caller, id)
	if err != nil {
		return err
	}
	if lb.VPC != "" && lb.VPC != v.Name {
		return refuse("the subnets of a load balancer must be in one VPC: %s is not in %s", id, lb.VPC)
	}
	lb.VPC, lb.Netns = v.Name, v.Netns
	if slices.ContainsFunc(lb.Nodes, func(n LBNodeState) bool { return n.AZ == sn.AZ }) {
		return refuse("a load balancer takes one subnet per Availability Zone: two are in %s (%s)", s.AZName(sn.AZ), sn.AZ)
	}
	ip, err := s.allocateAddr(sn, "", false)
	if err != nil {
		return err
	}
	lb.Nodes = append(lb.Nodes, LBNodeState{AZ: sn.AZ, Subnet: sn.Name, IP: ip})
	return nil
}

// SetLoadBalancerIPAddressType makes a load balancer of the caller's ipv4
// or dualstack (ELBv2's SetIpAddressType). It stays dualstack while a
// service it serves supports IPv6: the service's IPv6 endpoints stand on
// it.
func (s *State) SetLoadBalancerIPAddressType(caller, id, typ string) (*LBState, error) {
	lb, ok := s.LoadBalancerByID(caller, id)
	if !ok {
		return nil, &NotFoundError{"LoadBalancer", id}
	}
	switch typ {
	case "dualstack":
	case "ipv4":
		for _, svc := range s.Services {
			if slices.Contains(svc.LoadBalancers, lb.Name) && slices.Contains(svc.SupportedIPAddressTypes, "ipv6") {
				return nil, &DependencyError{fmt.Sprintf("load balancer %s stays dualstack while endpoint service %s supports IPv6: remove ipv6 from the service's supported IP address types first", lb.Name, svc.ID)}
			}
		}
	default:
		return nil, refuse("IpAddressType %q: a Network Load Balancer here is ipv4 or dualstack", typ)
	}
	lb.IPAddressType = typ
	return lb, nil
}

// SetLoadBalancerSubnets makes subnetIDs the subnets of a load balancer of
// the caller's (ELBv2's SetSubnets): a node in each new one, a node gone
// from each left out. An AZ stays while an endpoint of a service the load
// balancer serves has an ENI there that carries traffic: its connections
// have nowhere else to go in that AZ.
func (s *State) SetLoadBalancerSubnets(caller, id string, subnetIDs []string) (*LBState, error) {
	lb, ok := s.LoadBalancerByID(caller, id)
	if !ok {
		return nil, &NotFoundError{"LoadBalancer", id}
	}
	if len(subnetIDs) == 0 {
		return nil, refuse("a load balancer needs at least one subnet")
	}
	keep, azs := map[string]bool{}, map[string]bool{}
	var add []string
	for _, sid := range subnetIDs {
		_, sn, err := s.subnetByID(caller, sid)
		if err != nil {
			return nil, err
		}
		azs[sn.AZ] = true
		if slices.ContainsFunc(lb.Nodes, func(n LBNodeState) bool { return n.AZ == sn.AZ && n.Subnet == sn.Name }) {
			keep[sn.AZ] = true
		} else {
			add = append(add, sid)
		}
	}
	for _, n := range lb.Nodes {
		if azs[n.AZ] {
			continue // kept, or moved to another subnet of its AZ
		}
		for _, e := range s.Endpoints {
			svc, ok := s.ServiceByID(e.ServiceID)
			if !ok || !slices.Contains(svc.LoadBalancers, lb.Name) || !snapshot.Carries(e.State) {
				continue
			}
			if slices.ContainsFunc(e.ENIs, func(eni ENIState) bool { return eni.AZ == n.AZ }) {
				return nil, &DependencyError{fmt.Sprintf("load balancer %s cannot leave %s (%s): endpoint %s of service %s has an ENI there", lb.Name, s.AZName(n.AZ), n.AZ, e.ID, svc.ID)}
			}
		}
	}
	lb.Nodes = slices.DeleteFunc(lb.Nodes, func(n LBNodeState) bool { return !keep[n.AZ] })
	for _, sid := range add {
		if err := s.addLBNode(caller, lb, sid); err != nil {
			return nil, err
		}
	}
	return lb, nil
}

// DeleteLoadBalancer deletes a load balancer no service uses.
func (s *State) DeleteLoadBalancer(caller, id string) error {
	lb, ok := s.LoadBalancerByID(caller, id)
	if !ok {
		return &NotFoundError{"LoadBalancer", id}
	}
	if lb.DeletionProtection {
		return &OperationNotPermittedError{fmt.Sprintf("Load balancer '%s' cannot be deleted because deletion protection is enabled", lb.Name)}
	}
	for _, sv := range s.Services {
		if slices.Contains(sv.LoadBalancers, lb.Name) {
			return &DependencyError{fmt.Sprintf("Load balancer '%s' cannot be deleted because it is currently associated with endpoint service %s", lb.Name, sv.ID)}
		}
	}
	s.LoadBalancers = slices.DeleteFunc(s.LoadBalancers, func(o LBState) bool { return o.ID == id })
	return nil
}

// TargetGroupRequest is CreateTargetGroup's settings.
type TargetGroupRequest struct {
	Name, Protocol, VPCID string
	Port                  int
	HealthCheck           snapshot.HealthCheck
}

// CreateTargetGroup makes a TCP target group of IP targets in a VPC.
func (s *State) CreateTargetGroup(caller string, req TargetGroupRequest) (*TargetGroupState, error) {
	if !lbNameRe.MatchString(req.Name) {
		return nil, refuse("target group name %q: use up to 32 letters, digits and '-', not starting or ending with '-'", req.Name)
	}
	if req.Protocol != "TCP" {
		return nil, refuse("target group protocol %s: PrivateLink carries TCP only (PrivateLink does not support UDP)", req.Protocol)
	}
	if req.Port < 1 || req.Port > 65535 {
		return nil, refuse("port %d is outside 1-65535", req.Port)
	}
	v, err := s.ownedVPC(caller, req.VPCID)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(s.TargetGroups, func(g TargetGroupState) bool { return g.Name == req.Name }) {
		return nil, &DuplicateError{"TargetGroupName", "A target group with the same name '" + req.Name + "' exists"}
	}
	if err := settleHealthCheck(&req.HealthCheck); err != nil {
		return nil, err
	}
	s.TargetGroups = append(s.TargetGroups, TargetGroupState{Origin: "api", Name: req.Name, ID: newHexID(16), OwnerID: caller, VPC: v.Name, Port: req.Port, HealthCheck: req.HealthCheck})
	return &s.TargetGroups[len(s.TargetGroups)-1], nil
}

// DeleteTargetGroup deletes a target group no listener uses.
func (s *State) DeleteTargetGroup(caller, id string) error {
	tg, ok := s.TargetGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"TargetGroup", id}
	}
	for _, lb := range s.LoadBalancers {
		for _, l := range lb.Listeners {
			if l.TargetGroup == tg.Name {
				return &DependencyError{fmt.Sprintf("Target group '%s' is currently in use by a listener of load balancer %s", tg.Name, lb.Name)}
			}
		}
	}
	name := tg.Name
	s.Targets = slices.DeleteFunc(s.Targets, func(t TargetState) bool { return t.TargetGroup == name })
	s.TargetGroups = slices.DeleteFunc(s.TargetGroups, func(g TargetGroupState) bool { return g.Name == name })
	return nil
}

// RegisterTargets registers IP targets (servers of the caller's own: pvlink
// only routes to them) in a target group of the caller's.
func (s *State) RegisterTargets(caller, id string, targets []netip.AddrPort) error {
	tg, ok := s.TargetGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"TargetGroup", id}
	}
	for _, t := range targets {
		if err := s.RegisterTarget(tg.Name, t, true); err != nil {
			return err
		}
		for i := range s.Targets {
			if s.Targets[i].TargetGroup == tg.Name && s.Targets[i].IP == t.Addr().String() {
				s.Targets[i].Origin = "api"
			}
		}
	}
	return nil
}

// CreateListener forwards a TCP port of a load balancer to a target group
// in its VPC.
func (s *State) CreateListener(caller, lbID, protocol string, port int, tgID string) (*Listener, error) {
	lb, ok := s.LoadBalancerByID(caller, lbID)
	if !ok {
		return nil, &NotFoundError{"LoadBalancer", lbID}
	}
	if err := listenerProtocol(protocol); err != nil {
		return nil, err
	}
	tg, ok := s.TargetGroupByID(caller, tgID)
	if !ok {
		return nil, &NotFoundError{"TargetGroup", tgID}
	}
	if tg.VPC != lb.VPC {
		return nil, refuse("target group %s is in another VPC than load balancer %s", tg.Name, lb.Name)
	}
	if port < 1 || port > 65535 {
		return nil, refuse("port %d is outside 1-65535", port)
	}
	if slices.ContainsFunc(lb.Listeners, func(l Listener) bool { return l.Port == port }) {
		return nil, &DuplicateError{"Listener", fmt.Sprintf("A listener already exists on port %d of %s", port, lb.Name)}
	}
	lb.Listeners = append(lb.Listeners, Listener{ID: newHexID(16), Protocol: "TCP", Port: port, TargetGroup: tg.Name})
	return &lb.Listeners[len(lb.Listeners)-1], nil
}

// ModifyListener changes a listener of a load balancer of the caller's:
// its port (0 keeps it), protocol ("" keeps it; TCP only) and the target
// group it forwards to ("" keeps it). Connections already made stay with
// their targets, as on an NLB; new ones take the new port and group.
func (s *State) ModifyListener(caller, id, protocol string, port int, tgID string) (*LBState, *Listener, error) {
	for i := range s.LoadBalancers {
		lb := &s.LoadBalancers[i]
		if lb.OwnerID != caller {
			continue
		}
		j := slices.IndexFunc(lb.Listeners, func(l Listener) bool { return l.ID == id })
		if j < 0 {
			continue
		}
		l := &lb.Listeners[j]
		if protocol != "" {
			if err := listenerProtocol(protocol); err != nil {
				return nil, nil, err
			}
		}
		if port != 0 && port != l.Port {
			if port < 1 || port > 65535 {
				return nil, nil, refuse("port %d is outside 1-65535", port)
			}
			if slices.ContainsFunc(lb.Listeners, func(o Listener) bool { return o.Port == port }) {
				return nil, nil, &DuplicateError{"Listener", fmt.Sprintf("A listener already exists on port %d of %s", port, lb.Name)}
			}
		}
		group := l.TargetGroup
		if tgID != "" {
			tg, ok := s.TargetGroupByID(caller, tgID)
			if !ok {
				return nil, nil, &NotFoundError{"TargetGroup", tgID}
			}
			if tg.VPC != lb.VPC {
				return nil, nil, refuse("target group %s is in another VPC than load balancer %s", tg.Name, lb.Name)
			}
			group = tg.Name
		}
		if port != 0 {
			l.Port = port
		}
		l.TargetGroup = group
		return lb, l, nil
	}
	return nil, nil, &NotFoundError{"Listener", id}
}

// DeleteListener deletes a listener of a load balancer of the caller's.
func (s *State) DeleteListener(caller, id string) error {
	for i := range s.LoadBalancers {
		lb := &s.LoadBalancers[i]
		if lb.OwnerID != caller {
			continue
		}
		if slices.ContainsFunc(lb.Listeners, func(l Listener) bool { return l.ID == id }) {
			lb.Listeners = slices.DeleteFunc(lb.Listeners, func(l Listener) bool { return l.ID == id })
			return nil
		}
	}
	return &NotFoundError{"Listener", id}
}

// lbNames maps load-balancer ids (the end of their ARNs) to names, for a
// caller's.
func (s *State) lbNames(caller string, ids []string) ([]string, error) {
	var names []string
	for _, id := range ids {
		lb, ok := s.LoadBalancerByID(caller, id)
		if !ok {
			return nil, &NotFoundError{"LoadBalancer", id}
		}
		if len(lb.Nodes) == 0 {
			return nil, refuse("load balancer %s has no node", lb.Name)
		}
		names = append(names, lb.Name)
	}
	return names, nil
}

// CreateService makes an endpoint service of the caller's in front of its
// load balancers. Nobody may connect until principals are allowed.
func (s *State) CreateService(caller string, lbIDs []string, acceptanceRequired bool, ipTypes []string) (*ServiceState, error) {
	if len(lbIDs) == 0 {
		return nil, refuse("an endpoint service needs at least one Network Load Balancer")
	}
	names, err := s.lbNames(caller, lbIDs)
	if err != nil {
		return nil, err
	}
	if len(ipTypes) == 0 {
		ipTypes = []string{"ipv4"}
	}
	if err := s.checkIPTypes(names, ipTypes); err != nil {
		return nil, err
	}
	id := newID("vpce-svc-")
	host := s.lbRegion(names[0])
	s.Services = append(s.Services, ServiceState{
		Origin: "api", Name: id, ID: id, OwnerID: caller, ServiceName: fmt.Sprintf("com.amazonaws.vpce.%s.%s", host, id),
		State: "Available", LoadBalancers: names, AcceptanceRequired: acceptanceRequired, SupportedIPAddressTypes: ipTypes,
		Region: regionOrHome(host, s.Region),
	})
	return &s.Services[len(s.Services)-1], nil
}

// lbRegion is the Region of a load balancer (its VPC's).
func (s *State) lbRegion(name string) string {
	for _, lb := range s.LoadBalancers {
		if lb.Name == name {
			for _, v := range s.VPCs {
				if v.Name == lb.VPC {
					return cmpOr(v.Region, s.Region)
				}
			}
		}
	}
	return s.Region
}

// SetSupportedRegions adds and removes Regions a service is offered in,
// by the rules of cross-Region access: the host Region is always there
// and cannot be removed, a Region must be the fabric's, and a service
// whose load balancer has a custom TCP idle timeout is offered in its
// host Region only. Endpoints already made from a removed Region stay.
func (s *State) SetSupportedRegions(svc *ServiceState, add, remove []string) error {
	host := cmpOr(svc.Region, s.Region)
	for _, r := range remove {
		if r == host {
			return refuse("the host Region %s of service %s cannot be removed from its supported Regions", host, svc.ID)
		}
		if !slices.Contains(svc.SupportedRegions, r) {
			return refuse("Region %s is not a supported Region of service %s", r, svc.ID)
		}
		svc.SupportedRegions = slices.DeleteFunc(svc.SupportedRegions, func(o string) bool { return o == r })
	}
	for _, r := range add {
		if !s.HasRegion(r) {
			return refuse("Region %s is not one of the fabric's (%s)", r, strings.Join(s.RegionNames(), ", "))
		}
		if r == host || slices.Contains(svc.SupportedRegions, r) {
			continue
		}
		if tg := s.customIdleTimeout(svc); tg != "" {
			return refuse("cross-Region access is not supported for a Network Load Balancer with a custom TCP idle timeout (%s)", tg)
		}
		if err := s.mayMultiRegion(svc.OwnerID, KeySupportedRegion, r); err != nil {
			return err
		}
		svc.SupportedRegions = append(svc.SupportedRegions, r)
	}
	return nil
}

// customIdleTimeout names a listener (its port and load balancer) behind
// the service whose idle timeout in force (its own or its target group's)
// is not the NLB default, or "".
func (s *State) customIdleTimeout(svc *ServiceState) string {
	for _, lb := range s.LoadBalancers {
		if !slices.Contains(svc.LoadBalancers, lb.Name) {
			continue
		}
		for _, l := range lb.Listeners {
			if custom(s.IdleTimeout(l)) {
				return fmt.Sprintf("listener %d of %s", l.Port, lb.Name)
			}
		}
	}
	return ""
}

// custom reports whether an idle timeout is set to other than an NLB's
// default (350 s).
func custom(idle time.Duration) bool { return idle != 0 && idle != defaultIdleTimeout }

// checkIPTypes: ipv4 and/or ipv6, and ipv6 only on dualstack load
// balancers (the seed guide's rule; targets need not speak IPv6).
func (s *State) checkIPTypes(lbNames, types []string) error {
	for _, t := range types {
		switch t {
		case "ipv4":
		case "ipv6":
			for _, lb := range s.LoadBalancers {
				if slices.Contains(lbNames, lb.Name) && lb.IPAddressType != "dualstack" {
					return refuse("a service supports IPv6 only if its load balancers are dualstack; %s is %s", lb.Name, cmpOr(lb.IPAddressType, "ipv4"))
				}
			}
		default:
			return refuse("supported IP address type %q is not ipv4 or ipv6", t)
		}
	}
	if len(types) == 0 {
		return refuse("a service supports at least one IP address type")
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// connectedTo lists the endpoints connected to a service.
func (s *State) connectedTo(serviceID string) []string {
	var ids []string
	for _, e := range s.Endpoints {
		if e.ServiceID == serviceID && connected(e.State) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// ModifyService changes a service's acceptance setting, load balancers and
// IP address types. A load balancer cannot leave while endpoints are
// connected.
func (s *State) ModifyService(caller, id string, acceptance *bool, addLBs, removeLBs, addTypes, removeTypes []string) error {
	svc, err := s.ownedService(caller, id)
	if err != nil {
		return err
	}
	if acceptance != nil {
		svc.AcceptanceRequired = *acceptance
	}
	add, err := s.lbNames(caller, addLBs)
	if err != nil {
		return err
	}
	remove, err := s.lbNames(caller, removeLBs)
	if err != nil {
		return err
	}
	if len(remove) > 0 {
		if users := s.connectedTo(svc.ID); len(users) > 0 {
			return &DependencyError{fmt.Sprintf("load balancer %s cannot leave endpoint service %s while endpoints are connected to it (%s): reject or delete them first", remove[0], svc.ID, strings.Join(users, ", "))}
		}
	}
	lbs := slices.DeleteFunc(slices.Clone(svc.LoadBalancers), func(n string) bool { return slices.Contains(remove, n) })
	for _, n := range add {
		if !slices.Contains(lbs, n) {
			lbs = append(lbs, n)
		}
	}
	if len(lbs) == 0 {
		return refuse("an endpoint service needs at least one Network Load Balancer")
	}
	types := slices.DeleteFunc(slices.Clone(svc.SupportedIPAddressTypes), func(t string) bool { return slices.Contains(removeTypes, t) })
	for _, t := range addTypes {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if err := s.checkIPTypes(lbs, types); err != nil {
		return err
	}
	svc.LoadBalancers, svc.SupportedIPAddressTypes = lbs, types
	return nil
}

// DeleteService deletes a service no endpoint is connected to (rejected
// endpoints go with it).
func (s *State) DeleteService(caller, id string) error {
	svc, err := s.ownedService(caller, id)
	if err != nil {
		return err
	}
	if users := s.connectedTo(svc.ID); len(users) > 0 {
		return &DependencyError{fmt.Sprintf("Service %s has endpoints connected to it (%s): reject or delete them first", svc.ID, strings.Join(users, ", "))}
	}
	s.Endpoints = slices.DeleteFunc(s.Endpoints, func(e EndpointState) bool { return e.ServiceID == id })
	s.Services = slices.DeleteFunc(s.Services, func(o ServiceState) bool { return o.ID == id })
	s.Notifications = slices.DeleteFunc(s.Notifications, func(n NotificationState) bool { return n.ServiceID == id })
	return nil
}

// refreshPorts recomputes every endpoint's ports from its service's
// listeners, which may change after the endpoint was made.
func (s *State) refreshPorts() {
	for i := range s.Endpoints {
		if svc, ok := s.ServiceByID(s.Endpoints[i].ServiceID); ok {
			s.Endpoints[i].Ports = s.servicePorts(svc)
		}
	}
}

// ModifyTargetGroupHealthCheck changes a target group's health check.
func (s *State) ModifyTargetGroupHealthCheck(caller, id string, change func(*snapshot.HealthCheck) error) error {
	tg, ok := s.TargetGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"TargetGroup", id}
	}
	hc := tg.HealthCheck
	if err := change(&hc); err != nil {
		return err
	}
	if err := settleHealthCheck(&hc); err != nil {
		return err
	}
	tg.HealthCheck = hc
	return nil
}

// listenerProtocol refuses a listener protocol other than TCP, with the
// reason: PrivateLink carries no UDP, and pvlink does not terminate TLS.
func listenerProtocol(protocol string) error {
	switch protocol {
	case "TCP":
		return nil
	case "UDP", "TCP_UDP":
		return refuse("listener protocol %s: PrivateLink does not support UDP (a load balancer in front of an endpoint service takes TCP listeners)", protocol)
	case "TLS":
		return refuse("listener protocol TLS: pvlink's load balancers do not terminate TLS; use a TCP listener and let the target terminate it")
	}
	return refuse("listener protocol %q: a Network Load Balancer in front of an endpoint service takes TCP listeners", protocol)
}
