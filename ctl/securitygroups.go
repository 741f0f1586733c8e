package ctl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"pvlink.dev/pvlink/snapshot"
)

// Security groups through the API: a group of a VPC of the caller's, its
// ingress rules, and which endpoints' ENIs enforce it. A change to a
// group's rules reaches the forwarders of every endpoint that names it.

// SecurityGroupByID finds a group of the caller's.
func (s *State) SecurityGroupByID(caller, id string) (*SecurityGroupState, bool) {
	for i := range s.SecurityGroups {
		if s.SecurityGroups[i].ID == id && s.SecurityGroups[i].OwnerID == caller {
			return &s.SecurityGroups[i], true
		}
	}
	return nil, false
}

// CreateSecurityGroup makes an empty group (it lets nothing in) in a VPC of
// the caller's.
func (s *State) CreateSecurityGroup(caller, vpcID, name, description string) (*SecurityGroupState, error) {
	v, err := s.ownedVPC(caller, vpcID)
	if err != nil {
		return nil, err
	}
	if name == "" || len(name) > 255 || strings.HasPrefix(strings.ToLower(name), "sg-") {
		return nil, refuse("group name %q: 1 to 255 characters, not starting with sg-", name)
	}
	if description == "" {
		return nil, refuse("a security group needs a description (GroupDescription)")
	}
	if slices.ContainsFunc(s.SecurityGroups, func(g SecurityGroupState) bool { return g.VPC == v.Name && g.Name == name }) {
		return nil, &DuplicateError{"SecurityGroup", fmt.Sprintf("The security group '%s' already exists for VPC '%s'", name, vpcID)}
	}
	s.SecurityGroups = append(s.SecurityGroups, SecurityGroupState{Origin: "api", ID: newID("sg-"), Name: name, Description: description, VPC: v.Name, OwnerID: caller})
	return &s.SecurityGroups[len(s.SecurityGroups)-1], nil
}

// DeleteSecurityGroup deletes a group no endpoint names.
func (s *State) DeleteSecurityGroup(caller, id string) error {
	if _, ok := s.SecurityGroupByID(caller, id); !ok {
		return &NotFoundError{"GroupId", id}
	}
	for _, e := range s.Endpoints {
		if slices.Contains(e.SecurityGroups, id) {
			return &DependencyError{fmt.Sprintf("resource %s has a dependent object: endpoint %s", id, e.ID)}
		}
	}
	if lb := s.usedByLoadBalancer(id); lb != "" {
		return &DependencyError{fmt.Sprintf("resource %s has a dependent object: load balancer %s", id, lb)}
	}
	s.SecurityGroups = slices.DeleteFunc(s.SecurityGroups, func(g SecurityGroupState) bool { return g.ID == id })
	return nil
}

// Permission is one ingress permission as EC2 writes it.
type Permission struct {
	Protocol string // tcp, udp, icmp, -1 (all) or a number
	From, To int
	CIDRs    []string // IPv4 and IPv6 sources
}

// rules turns a permission into the forwarder's rules. UDP and ICMP are
// kept out: nothing but TCP reaches an endpoint.
func (p Permission) rules() ([]snapshot.SGRule, error) {
	var proto uint8
	switch strings.ToLower(p.Protocol) {
	case "tcp", "6":
		proto = 6
		if p.From < 0 || p.To > 65535 || p.From > p.To {
			return nil, refuse("port range %d-%d is not within 0-65535", p.From, p.To)
		}
	case "-1", "all":
		p.From, p.To = 0, 65535
	case "udp", "17", "icmp", "1", "icmpv6", "58":
		return nil, nil
	default:
		return nil, refuse("protocol %q is not tcp, udp, icmp, icmpv6 or -1", p.Protocol)
	}
	if len(p.CIDRs) == 0 {
		return nil, refuse("name a source range (CidrIp or CidrIpv6)")
	}
	var out []snapshot.SGRule
	for _, c := range p.CIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, refuse("%q is not a CIDR range", c)
		}
		out = append(out, snapshot.SGRule{Proto: proto, FromPort: uint16(p.From), ToPort: uint16(p.To), Source: pfx.Masked()})
	}
	return out, nil
}

// AuthorizeIngress adds rules to a group of the caller's; a rule it has
// already is refused, as EC2 refuses a duplicate permission.
func (s *State) AuthorizeIngress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		if slices.Contains(g.Ingress, r) {
			return &DuplicateError{"Permission", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", r.Source, p.Protocol)}
		}
		g.Ingress = append(g.Ingress, r)
		return nil
	})
}

// defaultEgress is EC2's outbound rule of a new group: everything, to
// anywhere (IPv4).
var defaultEgress = []snapshot.SGRule{{Proto: 0, FromPort: 0, ToPort: 65535, Source: netip.MustParsePrefix("0.0.0.0/0")}}

// EgressRules are the group's outbound rules in force.
func (g *SecurityGroupState) EgressRules() []snapshot.SGRule {
	if !g.EgressSet {
		return defaultEgress
	}
	return g.Egress
}

// AuthorizeEgress and RevokeEgress change a group's outbound rules as
// AuthorizeIngress and RevokeIngress its inbound ones (the range named is
// the destination's).
func (s *State) AuthorizeEgress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		rules := g.EgressRules()
		if slices.Contains(rules, r) {
			return &DuplicateError{"Permission", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", r.Source, p.Protocol)}
		}
		g.EgressSet, g.Egress = true, append(slices.Clone(rules), r)
		return nil
	})
}

func (s *State) RevokeEgress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		rules := g.EgressRules()
		if !slices.Contains(rules, r) {
			return refuse("the outbound rule %s %d-%d to %s is not in %s", p.Protocol, p.From, p.To, r.Source, g.ID)
		}
		g.EgressSet, g.Egress = true, slices.DeleteFunc(slices.Clone(rules), func(o snapshot.SGRule) bool { return o == r })
		return nil
	})
}

// RevokeIngress removes rules from a group of the caller's.
func (s *State) RevokeIngress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		if !slices.Contains(g.Ingress, r) {
			return refuse("the rule %s %d-%d from %s is not in %s", p.Protocol, p.From, p.To, r.Source, g.ID)
		}
		g.Ingress = slices.DeleteFunc(g.Ingress, func(o snapshot.SGRule) bool { return o == r })
		return nil
	})
}

// eachRule calls fn for every forwarder rule of perms on a group of the
// caller's.
func (s *State) eachRule(caller, id string, perms []Permission, fn func(*SecurityGroupState, snapshot.SGRule, Permission) error) error {
	g, ok := s.SecurityGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"GroupId", id}
	}
	for _, p := range perms {
		rules, err := p.rules()
		if err != nil {
			return err
		}
		for _, r := range rules {
			if err := fn(g, r, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetEndpointGroups adds and removes security groups of an endpoint of the
// caller's; each must be a group of the endpoint's VPC.
func (s *State) SetEndpointGroups(caller string, e *EndpointState, add, remove []string) error {
	for _, id := range add {
		g, ok := s.SecurityGroupByID(caller, id)
		if !ok {
			return &NotFoundError{"GroupId", id}
		}
		if g.VPC != e.VPC {
			return refuse("security group %s is in another VPC than endpoint %s", id, e.ID)
		}
		if !slices.Contains(e.SecurityGroups, id) {
			e.SecurityGroups = append(e.SecurityGroups, id)
		}
	}
	for _, id := range remove {
		if !slices.Contains(e.SecurityGroups, id) {
			return refuse("security group %s is not on endpoint %s", id, e.ID)
		}
		e.SecurityGroups = slices.DeleteFunc(e.SecurityGroups, func(o string) bool { return o == id })
	}
	return nil
}
