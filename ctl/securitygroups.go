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
	if name == defaultGroupName {
		return nil, refuse("Cannot use reserved security group name: %s", name)
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

// DeleteSecurityGroup deletes a group no endpoint, load balancer or other
// group's rule names; a VPC's default group is deleted only with its VPC.
func (s *State) DeleteSecurityGroup(caller, id string) error {
	g, ok := s.SecurityGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"GroupId", id}
	}
	if g.Default {
		return &CannotDeleteError{fmt.Sprintf("the specified group: %q name: %q cannot be deleted by a user", g.ID, g.Name)}
	}
	for _, o := range s.SecurityGroups {
		names := func(r GroupRule) bool { return r.Group == id }
		if o.ID != id && (slices.ContainsFunc(o.FromGroups, names) || slices.ContainsFunc(o.ToGroups, names)) {
			return &DependencyError{fmt.Sprintf("resource %s has a dependent object: a rule of %s", id, o.ID)}
		}
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
	Groups   []string // security groups whose members are sources
	// PrefixLists are prefix lists (pl-...) whose ranges are sources.
	PrefixLists []string
	// Descriptions are the rules' descriptions, by source: a range as
	// its masked prefix writes it, or a group's id.
	Descriptions map[string]string
}

// GroupRule lets in a protocol (6 for TCP, 0 for all) on a port range from
// the members of a security group (Group is its id) or the ranges of a
// prefix list (its id, pl-...).
type GroupRule struct {
	Proto    uint8  `json:"proto"`
	FromPort uint16 `json:"from_port"`
	ToPort   uint16 `json:"to_port"`
	Group    string `json:"group"`
}

// rules turns a permission into the forwarder's rules and the rules from
// groups. UDP and ICMP are kept out: nothing but TCP reaches an endpoint.
func (p Permission) rules() ([]snapshot.SGRule, []GroupRule, error) {
	var proto uint8
	switch strings.ToLower(p.Protocol) {
	case "tcp", "6":
		proto = 6
		if p.From < 0 || p.To > 65535 || p.From > p.To {
			return nil, nil, refuse("port range %d-%d is not within 0-65535", p.From, p.To)
		}
	case "-1", "all":
		p.From, p.To = 0, 65535
	case "udp", "17", "icmp", "1", "icmpv6", "58":
		return nil, nil, nil
	default:
		return nil, nil, refuse("protocol %q is not tcp, udp, icmp, icmpv6 or -1", p.Protocol)
	}
	if len(p.Peers()) == 0 {
		return nil, nil, refuse("name a source: a range (CidrIp or CidrIpv6), a security group (GroupId) or a prefix list (PrefixListId)")
	}
	var out []snapshot.SGRule
	for _, c := range p.CIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, nil, refuse("%q is not a CIDR range", c)
		}
		out = append(out, snapshot.SGRule{Proto: proto, FromPort: uint16(p.From), ToPort: uint16(p.To), Source: pfx.Masked()})
	}
	var groups []GroupRule
	// A list is kept as a group is: a rule naming its id (IsPrefixList
	// tells them apart), so each must be named as what it is.
	for _, g := range p.Groups {
		if IsPrefixList(g) {
			return nil, nil, &NotFoundError{"GroupId", g}
		}
		groups = append(groups, GroupRule{Proto: proto, FromPort: uint16(p.From), ToPort: uint16(p.To), Group: g})
	}
	for _, l := range p.PrefixLists {
		if !IsPrefixList(l) {
			return nil, nil, &NotFoundError{"PrefixListID", l}
		}
		groups = append(groups, GroupRule{Proto: proto, FromPort: uint16(p.From), ToPort: uint16(p.To), Group: l})
	}
	return out, groups, nil
}

// Peers are the permission's ranges, groups and prefix lists, in that
// order.
func (p Permission) Peers() []string {
	return slices.Concat(p.CIDRs, p.Groups, p.PrefixLists)
}

// ProtocolName is how EC2 writes a rule's protocol.
func ProtocolName(proto uint8) string {
	if proto == 0 {
		return "-1"
	}
	return "tcp"
}

// AuthorizeIngress adds rules to a group of the caller's; a rule it has
// already is refused, as EC2 refuses a duplicate permission.
func (s *State) AuthorizeIngress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		if slices.Contains(g.Ingress, r) {
			return &DuplicateError{"Permission", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", r.Source, p.Protocol)}
		}
		g.Ingress = append(g.Ingress, r)
		g.uniqueID(ruleRef{cidr: &r})
		return g.setDescription(cidrRuleKey(false, r), p.Descriptions[r.Source.String()])
	}, func(g *SecurityGroupState, r GroupRule, p Permission) error { return g.addGroupRule(false, r, p) })
}

// addGroupRule adds a rule whose peer is a group (outbound if egress).
func (g *SecurityGroupState) addGroupRule(egress bool, r GroupRule, p Permission) error {
	rules := g.groupRulesOf(egress)
	if slices.Contains(*rules, r) {
		return &DuplicateError{"Permission", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", r.Group, ProtocolName(r.Proto))}
	}
	*rules = append(*rules, r)
	g.uniqueID(ruleRef{egress: egress, group: &r})
	return g.setDescription(groupRuleKey(egress, r), p.Descriptions[r.Group])
}

// removeGroupRule removes a rule whose peer is a group (outbound if
// egress), with its description and kept id.
func (g *SecurityGroupState) removeGroupRule(egress bool, r GroupRule) error {
	rules := g.groupRulesOf(egress)
	if !slices.Contains(*rules, r) {
		return refuse("the rule %s %d-%d with %s is not in %s", ProtocolName(r.Proto), r.FromPort, r.ToPort, r.Group, g.ID)
	}
	*rules = slices.DeleteFunc(*rules, func(o GroupRule) bool { return o == r })
	g.setRuleID(groupRuleKey(egress, r), "")
	return g.setDescription(groupRuleKey(egress, r), "")
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
		g.uniqueID(ruleRef{egress: true, cidr: &r})
		return g.setDescription(cidrRuleKey(true, r), p.Descriptions[r.Source.String()])
	}, func(g *SecurityGroupState, r GroupRule, p Permission) error { return g.addGroupRule(true, r, p) })
}

func (s *State) RevokeEgress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		rules := g.EgressRules()
		if !slices.Contains(rules, r) {
			return refuse("the outbound rule %s %d-%d to %s is not in %s", p.Protocol, p.From, p.To, r.Source, g.ID)
		}
		g.EgressSet, g.Egress = true, slices.DeleteFunc(slices.Clone(rules), func(o snapshot.SGRule) bool { return o == r })
		g.setRuleID(cidrRuleKey(true, r), "")
		return g.setDescription(cidrRuleKey(true, r), "")
	}, func(g *SecurityGroupState, r GroupRule, _ Permission) error { return g.removeGroupRule(true, r) })
}

// RevokeIngress removes rules from a group of the caller's.
func (s *State) RevokeIngress(caller, id string, perms []Permission) error {
	return s.eachRule(caller, id, perms, func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		if !slices.Contains(g.Ingress, r) {
			return refuse("the rule %s %d-%d from %s is not in %s", p.Protocol, p.From, p.To, r.Source, g.ID)
		}
		g.Ingress = slices.DeleteFunc(g.Ingress, func(o snapshot.SGRule) bool { return o == r })
		g.setRuleID(cidrRuleKey(false, r), "")
		return g.setDescription(cidrRuleKey(false, r), "")
	}, func(g *SecurityGroupState, r GroupRule, _ Permission) error { return g.removeGroupRule(false, r) })
}

// eachRule calls fn for every forwarder rule of perms on a group of the
// caller's, and withGroup for every rule whose peer is a group (of the
// caller's, in the same VPC) or a prefix list of the caller's.
func (s *State) eachRule(caller, id string, perms []Permission, fn func(*SecurityGroupState, snapshot.SGRule, Permission) error, withGroup func(*SecurityGroupState, GroupRule, Permission) error) error {
	g, ok := s.SecurityGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"GroupId", id}
	}
	for _, p := range perms {
		rules, groups, err := p.rules()
		if err != nil {
			return err
		}
		for _, r := range groups {
			if r.Group == "" {
				return refuse("name a rule's security group by its id (GroupId): a name serves only in a default VPC")
			}
			if err := s.checkPeer(caller, g, r.Group); err != nil {
				return err
			}
		}
		for _, r := range rules {
			if err := fn(g, r, p); err != nil {
				return err
			}
		}
		for _, r := range groups {
			if err := withGroup(g, r, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetEndpointGroups adds and removes security groups of an endpoint of the
// caller's; each must be a group of the endpoint's VPC, and the endpoint
// keeps one at least (an EC2 network interface always has one).
func (s *State) SetEndpointGroups(caller string, e *EndpointState, add, remove []string) error {
	had := len(e.SecurityGroups) > 0
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
	if had && len(e.SecurityGroups) == 0 {
		return refuse("endpoint %s must keep at least one security group: add another (its VPC's default group, say) as you remove the last", e.ID)
	}
	return nil
}
