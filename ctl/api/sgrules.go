package api

import (
	"fmt"
	"slices"
	"strconv"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// Security group rules one by one, as EC2 has listed them since 2021
// (DescribeSecurityGroupRules, the rules an Authorize added, a Revoke or a
// Modify by SecurityGroupRuleId), with the ids ctl gives them
// (ctl/sgruleids.go).

// sgRule is EC2's SecurityGroupRule.
type sgRule struct {
	ID       string `xml:"securityGroupRuleId"`
	GroupID  string `xml:"groupId"`
	Owner    string `xml:"groupOwnerId"`
	IsEgress bool   `xml:"isEgress"`
	Protocol string `xml:"ipProtocol"`
	From     int    `xml:"fromPort"`
	To       int    `xml:"toPort"`
	CIDRv4   string `xml:"cidrIpv4,omitempty"`
	CIDRv6   string `xml:"cidrIpv6,omitempty"`
	// Referenced is the source group of a rule that names one.
	Referenced   *groupPair `xml:"referencedGroupInfo,omitempty"`
	PrefixListID string     `xml:"prefixListId,omitempty"`
	Description  string     `xml:"description,omitempty"`
	Tags         []tagItem  `xml:"tagSet>item,omitempty"`
}

// withRuleTags gives each rule its tags.
func withRuleTags(m *ctl.State, rules []sgRule) []sgRule {
	for i := range rules {
		rules[i].Tags = tagsOf(m, rules[i].ID)
	}
	return rules
}

// rulesOut lists a group's rules of one direction as EC2's rules.
func rulesOut(g ctl.SecurityGroupState, egress bool, rules []snapshot.SGRule) []sgRule {
	var out []sgRule
	for _, r := range rules {
		o := sgRule{ID: g.RuleID(egress, r), GroupID: g.ID, Owner: g.OwnerID, IsEgress: egress, Description: g.RuleDescription(egress, r)}
		o.Protocol, o.From, o.To = ruleFields(r)
		if r.Source.Addr().Is4() {
			o.CIDRv4 = r.Source.String()
		} else {
			o.CIDRv6 = r.Source.String()
		}
		out = append(out, o)
	}
	return out
}

// groupRulesOut lists g's rules of one direction whose peer is a group or
// a prefix list as EC2's rules.
func groupRulesOut(g ctl.SecurityGroupState, egress bool) []sgRule {
	var out []sgRule
	for _, r := range g.GroupRules(egress) {
		o := sgRule{ID: g.GroupRuleID(egress, r), GroupID: g.ID, Owner: g.OwnerID, IsEgress: egress, Description: g.GroupRuleDescription(egress, r)}
		if ctl.IsPrefixList(r.Group) {
			o.PrefixListID = r.Group
		} else {
			o.Referenced = &groupPair{GroupID: r.Group, UserID: g.OwnerID}
		}
		o.Protocol, o.From, o.To = groupRuleFields(r)
		out = append(out, o)
	}
	return out
}

// ruleFields are a rule's protocol and ports as EC2 writes them: tcp and
// its range, or -1 (every protocol) with ports -1.
func ruleFields(r snapshot.SGRule) (proto string, from, to int) {
	if r.Proto == 0 {
		return "-1", -1, -1
	}
	return "tcp", int(r.FromPort), int(r.ToPort)
}

func groupRuleFields(r ctl.GroupRule) (proto string, from, to int) {
	return ruleFields(snapshot.SGRule{Proto: r.Proto, FromPort: r.FromPort, ToPort: r.ToPort})
}

// directionRules are every rule of group g of one direction, ranges then
// groups.
func directionRules(g ctl.SecurityGroupState, egress bool) []sgRule {
	rules := g.Ingress
	if egress {
		rules = g.EgressRules()
	}
	return append(rulesOut(g, egress, rules), groupRulesOut(g, egress)...)
}

// allRules are every rule of group g, inbound then outbound.
func allRules(g ctl.SecurityGroupState) []sgRule {
	return append(directionRules(g, false), directionRules(g, true)...)
}

// describeSecurityGroupRules answers DescribeSecurityGroupRules for the
// caller's groups.
func describeSecurityGroupRules(m *ctl.State, caller string, q query) (any, error) {
	f := q.filters()
	if err := unknownFilters(f, "group-id", "security-group-rule-id", tagFilters); err != nil {
		return nil, err
	}
	ids := q.list("SecurityGroupRuleId")
	var out []sgRule
	for _, g := range m.SecurityGroups {
		if g.OwnerID != caller {
			continue
		}
		for _, r := range allRules(g) {
			// tag:KEY and tag-key match the rule's own tags, not its
			// group's.
			if (len(ids) == 0 || slices.Contains(ids, r.ID)) && match(f, withTags(map[string][]string{"group-id": {g.ID}, "security-group-rule-id": {r.ID}}, m.Tags[r.ID])) {
				out = append(out, r)
			}
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(out, func(r sgRule) bool { return r.ID == id }) {
			return nil, &apiError{400, "InvalidSecurityGroupRuleId.NotFound", fmt.Sprintf("The security group rule ID '%s' does not exist", id)}
		}
	}
	out, next, err := page(q, out)
	if err != nil {
		return nil, err
	}
	withRuleTags(m, out)
	return struct {
		Rules []sgRule `xml:"securityGroupRuleSet>item"`
		Next  string   `xml:"nextToken,omitempty"`
	}{out, next}, nil
}

// rulePermissions are the permissions that name the rules with ids in
// group id (one direction), for a Revoke by SecurityGroupRuleId.
func rulePermissions(m *ctl.State, caller, groupID string, egress bool, ids []string) ([]ctl.Permission, error) {
	g, ok := m.SecurityGroupByID(caller, groupID)
	if !ok {
		return nil, &ctl.NotFoundError{Kind: "GroupId", ID: groupID}
	}
	var perms []ctl.Permission
	for _, id := range ids {
		p, ok := g.RulePermission(egress, id)
		if !ok {
			return nil, &apiError{400, "InvalidSecurityGroupRuleId.NotFound", fmt.Sprintf("The security group rule ID '%s' does not exist in %s", id, groupID)}
		}
		perms = append(perms, p)
	}
	return perms, nil
}

// addedRules are the rules of group id (one direction) that before had
// not: what an Authorize answers.
func addedRules(before, after *ctl.State, caller, groupID string, egress bool) []sgRule {
	return newRules(groupRulesIn(before, caller, groupID, egress), groupRulesIn(after, caller, groupID, egress))
}

// groupRulesIn are the rules of group id (one direction) in s.
func groupRulesIn(s *ctl.State, caller, groupID string, egress bool) []sgRule {
	g, ok := s.SecurityGroupByID(caller, groupID)
	if !ok {
		return nil
	}
	return directionRules(*g, egress)
}

// newRules are the rules of now that had has not.
func newRules(had, now []sgRule) []sgRule {
	var out []sgRule
	for _, r := range now {
		if !slices.ContainsFunc(had, func(o sgRule) bool { return o.ID == r.ID }) {
			out = append(out, r)
		}
	}
	return out
}

// ruleChanges reads ModifySecurityGroupRules' SecurityGroupRule.N: a rule's
// id (SecurityGroupRuleId) and what it becomes (SecurityGroupRule: the
// protocol, ports, one peer and a description).
func (q query) ruleChanges() ([]ctl.RuleChange, error) {
	var out []ctl.RuleChange
	for i := 1; ; i++ {
		prefix := "SecurityGroupRule." + strconv.Itoa(i) + "."
		id := q.str(prefix + "SecurityGroupRuleId")
		rule := prefix + "SecurityGroupRule."
		if id == "" {
			if q.str(rule+"IpProtocol") != "" {
				return nil, &apiError{400, "MissingParameter", fmt.Sprintf("The request must contain the parameter %sSecurityGroupRuleId", prefix)}
			}
			break
		}
		p := ctl.Permission{Protocol: q.str(rule + "IpProtocol")}
		if p.Protocol == "" {
			return nil, &apiError{400, "MissingParameter", fmt.Sprintf("The request must contain the parameter %sIpProtocol", rule)}
		}
		from, to := q.str(rule+"FromPort"), q.str(rule+"ToPort")
		if p.Protocol != "-1" && (from == "" || to == "") {
			return nil, &apiError{400, "MissingParameter", fmt.Sprintf("rule %s: protocol %s needs FromPort and ToPort", id, p.Protocol)}
		}
		var err1, err2 error
		if from != "" {
			p.From, err1 = strconv.Atoi(from)
		}
		if to != "" {
			p.To, err2 = strconv.Atoi(to)
		}
		if err1 != nil || err2 != nil {
			return nil, &apiError{400, "InvalidParameterValue", fmt.Sprintf("rule %s: ports %q and %q are not numbers", id, from, to)}
		}
		desc := q.str(rule + "Description")
		for _, c := range []string{q.str(rule + "CidrIpv4"), q.str(rule + "CidrIpv6")} {
			if c != "" {
				p.CIDRs = append(p.CIDRs, c)
				p.Describe(sourceKey(c), desc)
			}
		}
		if g := q.str(rule + "ReferencedGroupId"); g != "" {
			p.Groups = append(p.Groups, g)
			p.Describe(g, desc)
		}
		if l := q.str(rule + "PrefixListId"); l != "" {
			p.PrefixLists = append(p.PrefixLists, l)
			p.Describe(l, desc)
		}
		out = append(out, ctl.RuleChange{ID: id, Rule: p})
	}
	if len(out) == 0 {
		return nil, &apiError{400, "MissingParameter", "The request must contain the parameter SecurityGroupRule.1"}
	}
	return out, nil
}
