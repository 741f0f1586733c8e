package ctl

import (
	"net/netip"
	"slices"

	"pvlink.dev/pvlink/snapshot"
)

// A VPC's default security group, and the members a rule whose source is
// a group lets in.
//
// Every VPC has a group named "default", made with it (by the topology's
// plan, CreateVpc, or, for a VPC stored before there were default groups,
// the first change after ctld starts) and deleted only with it. As in
// EC2, it lets in everything its own members send and lets everything
// out, and an interface endpoint made without security groups gets it.
// pvlink does not model instances: the hosts of a VPC (whatever sends
// from its namespace) count as members of its default group, as
// instances launched without a group of their own are. So an endpoint
// left with the default group takes traffic from its VPC's ranges only.

// defaultGroupName is the name EC2 reserves for the default group.
const defaultGroupName = "default"

// CannotDeleteError refuses to delete a VPC's default group (EC2's
// CannotDelete).
type CannotDeleteError struct{ Msg string }

func (e *CannotDeleteError) Error() string { return e.Msg }

// newDefaultGroup is VPC v's default group as EC2 makes it: inbound, all
// traffic from its own members; outbound, everything (IPv6 too when the
// VPC has an IPv6 range).
func newDefaultGroup(v VPCState) SecurityGroupState {
	id := newID("sg-")
	g := SecurityGroupState{
		Origin: v.Origin, ID: id, Name: defaultGroupName, Description: "default VPC security group",
		VPC: v.Name, OwnerID: v.OwnerID, Default: true,
		FromGroups: []GroupRule{{Proto: 0, FromPort: 0, ToPort: 65535, Group: id}},
	}
	if v.IPv6CIDR != "" {
		g.EgressSet = true
		g.Egress = append(slices.Clone(defaultEgress), snapshot.SGRule{Proto: 0, FromPort: 0, ToPort: 65535, Source: netip.MustParsePrefix("::/0")})
	}
	return g
}

// DefaultGroup is the default group of the VPC named vpc, nil if it has
// none (yet).
func (s *State) DefaultGroup(vpc string) *SecurityGroupState {
	for i := range s.SecurityGroups {
		if g := &s.SecurityGroups[i]; g.Default && g.VPC == vpc {
			return g
		}
	}
	return nil
}

// ensureDefaultGroups gives every VPC that has none its default group, and
// every endpoint without a group its VPC's, and drops the default groups
// of VPCs that are gone. Every change runs it: it is how a model stored
// before there were default groups gets them.
func (s *State) ensureDefaultGroups() {
	s.SecurityGroups = slices.DeleteFunc(s.SecurityGroups, func(g SecurityGroupState) bool {
		return g.Default && !slices.ContainsFunc(s.VPCs, func(v VPCState) bool { return v.Name == g.VPC })
	})
	for _, v := range s.VPCs {
		if s.DefaultGroup(v.Name) == nil {
			s.SecurityGroups = append(s.SecurityGroups, newDefaultGroup(v))
		}
	}
	for i := range s.Endpoints {
		if e := &s.Endpoints[i]; len(e.SecurityGroups) == 0 {
			if g := s.DefaultGroup(e.VPC); g != nil {
				e.SecurityGroups = []string{g.ID}
			}
		}
	}
}

// groupMembers are the sources a rule naming group id lets in: the
// addresses of the endpoint ENIs and load balancer nodes the group is on
// and, for a VPC's default group, the VPC's ranges (its hosts).
func (s *State) groupMembers(id string) []netip.Prefix {
	var out []netip.Prefix
	add := func(a string) { // a range, or an address
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				return // "": no such address
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		p = p.Masked()
		if !slices.ContainsFunc(out, func(o netip.Prefix) bool { return o.Bits() <= p.Bits() && o.Contains(p.Addr()) }) {
			out = append(out, p) // not within a range it has
		}
	}
	for _, g := range s.SecurityGroups {
		if g.ID != id || !g.Default {
			continue
		}
		for _, v := range s.VPCs {
			if v.Name == g.VPC {
				add(v.CIDR)
				add(v.IPv6CIDR)
			}
		}
	}
	for _, e := range s.Endpoints {
		if slices.Contains(e.SecurityGroups, id) {
			for _, eni := range e.ENIs {
				add(eni.IP)
				add(eni.IPv6)
			}
		}
	}
	for _, lb := range s.LoadBalancers {
		if slices.Contains(lb.SecurityGroups, id) {
			for _, n := range lb.Nodes {
				add(n.IP)
			}
		}
	}
	return out
}
