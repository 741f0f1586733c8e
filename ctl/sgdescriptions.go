package ctl

import (
	"fmt"
	"slices"

	"pvlink.dev/pvlink/snapshot"
)

// Security group rules carry descriptions, as EC2's do (IpRanges.N.Description
// and the like): set when a rule is authorized, changed with
// UpdateRuleDescriptions, gone with the rule. A group keeps them beside its
// rules, by each rule's content; the forwarders never see them.

// maxRuleDescription is EC2's limit on a rule's description.
const maxRuleDescription = 255

// cidrRuleKey names a rule whose peer is a range.
func cidrRuleKey(egress bool, r snapshot.SGRule) string {
	dir := "in"
	if egress {
		dir = "out"
	}
	return fmt.Sprintf("%s|%d|%d|%d|%s", dir, r.Proto, r.FromPort, r.ToPort, r.Source)
}

// groupRuleKey names a rule whose peer is a group: its source (inbound)
// or its destination (outbound, if egress).
func groupRuleKey(egress bool, r GroupRule) string {
	dir := "in"
	if egress {
		dir = "out"
	}
	return fmt.Sprintf("%s|%d|%d|%d|%s", dir, r.Proto, r.FromPort, r.ToPort, r.Group)
}

// setDescription sets (or, with "", removes) the description of the rule
// named key.
func (g *SecurityGroupState) setDescription(key, desc string) error {
	if len(desc) > maxRuleDescription {
		return refuse("a rule's description is at most %d characters, got %d", maxRuleDescription, len(desc))
	}
	if desc == "" {
		delete(g.Descriptions, key)
		if len(g.Descriptions) == 0 {
			g.Descriptions = nil
		}
		return nil
	}
	if g.Descriptions == nil {
		g.Descriptions = map[string]string{}
	}
	g.Descriptions[key] = desc
	return nil
}

// RuleDescription is the description of g's rule r (outbound if egress).
func (g *SecurityGroupState) RuleDescription(egress bool, r snapshot.SGRule) string {
	return g.Descriptions[cidrRuleKey(egress, r)]
}

// GroupRuleDescription is the description of g's rule r whose peer is a
// group (outbound if egress).
func (g *SecurityGroupState) GroupRuleDescription(egress bool, r GroupRule) string {
	return g.Descriptions[groupRuleKey(egress, r)]
}

// GroupRules are g's rules of one direction whose peer is a group.
func (g *SecurityGroupState) GroupRules(egress bool) []GroupRule { return *g.groupRulesOf(egress) }

// groupRulesOf is where g keeps its rules of one direction whose peer is
// a group.
func (g *SecurityGroupState) groupRulesOf(egress bool) *[]GroupRule {
	if egress {
		return &g.ToGroups
	}
	return &g.FromGroups
}

// UpdateRuleDescriptions sets the descriptions of rules a group of the
// caller's has (EC2's UpdateSecurityGroupRuleDescriptionsIngress and
// Egress); a rule it has not is refused, and a rule named without a
// description loses its own.
func (s *State) UpdateRuleDescriptions(caller, id string, egress bool, perms []Permission) error {
	cidr := func(g *SecurityGroupState, r snapshot.SGRule, p Permission) error {
		rules := g.Ingress
		if egress {
			rules = g.EgressRules()
		}
		if !slices.Contains(rules, r) {
			return &NotFoundError{"Permission", fmt.Sprintf("%s %d-%d %s", p.Protocol, r.FromPort, r.ToPort, r.Source)}
		}
		return g.setDescription(cidrRuleKey(egress, r), p.Descriptions[r.Source.String()])
	}
	group := func(g *SecurityGroupState, r GroupRule, p Permission) error {
		if !slices.Contains(g.GroupRules(egress), r) {
			return &NotFoundError{"Permission", fmt.Sprintf("%s %d-%d %s", p.Protocol, r.FromPort, r.ToPort, r.Group)}
		}
		return g.setDescription(groupRuleKey(egress, r), p.Descriptions[r.Group])
	}
	return s.eachRule(caller, id, perms, cidr, group)
}

// Describe gives p's rule from source (a range as its masked prefix
// writes it, or a group's id) a description.
func (p *Permission) Describe(source, desc string) {
	if desc == "" {
		return
	}
	if p.Descriptions == nil {
		p.Descriptions = map[string]string{}
	}
	p.Descriptions[source] = desc
}
