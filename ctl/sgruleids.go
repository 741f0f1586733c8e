package ctl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"pvlink.dev/pvlink/snapshot"
)

// Security group rules have ids (sgr-), as EC2's have had since 2021. A
// rule's id is derived from its group, direction and content, so it is the
// same on every call and after a restart, and a rule removed and added
// again gets its old id back. A rule changed by ModifySecurityGroupRules
// keeps the id it had, as in EC2: the group remembers such ids (RuleIDs),
// and a rule added later whose content would derive an id another rule
// kept gets another one.

// hashedRuleID is the id derived from a rule's group and content.
func hashedRuleID(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "sgr-" + hex.EncodeToString(sum[:])[:17]
}

// RuleID is the id of g's rule r (outbound if egress).
func (g *SecurityGroupState) RuleID(egress bool, r snapshot.SGRule) string {
	if id, ok := g.RuleIDs[cidrRuleKey(egress, r)]; ok {
		return id
	}
	return hashedRuleID(fmt.Sprintf("%s|%v|%d|%d|%d|%s", g.ID, egress, r.Proto, r.FromPort, r.ToPort, r.Source))
}

// GroupRuleID is the id of g's rule r whose peer is a group (outbound if
// egress).
func (g *SecurityGroupState) GroupRuleID(egress bool, r GroupRule) string {
	if id, ok := g.RuleIDs[groupRuleKey(egress, r)]; ok {
		return id
	}
	return hashedRuleID(fmt.Sprintf("%s|%v|%d|%d|%d|group:%s", g.ID, egress, r.Proto, r.FromPort, r.ToPort, r.Group))
}

// ruleRef is one rule of a group, whichever its kind and direction: its
// peer a range or a group.
type ruleRef struct {
	egress bool
	cidr   *snapshot.SGRule
	group  *GroupRule
}

func (r ruleRef) key() string {
	if r.group != nil {
		return groupRuleKey(r.egress, *r.group)
	}
	return cidrRuleKey(r.egress, *r.cidr)
}

func (g *SecurityGroupState) idOf(r ruleRef) string {
	if r.group != nil {
		return g.GroupRuleID(r.egress, *r.group)
	}
	return g.RuleID(r.egress, *r.cidr)
}

// rules are all of g's rules: inbound from ranges and from groups, then
// outbound to ranges and to groups.
func (g *SecurityGroupState) rules() []ruleRef {
	var out []ruleRef
	for _, r := range g.Ingress {
		out = append(out, ruleRef{cidr: &r})
	}
	for _, r := range g.FromGroups {
		out = append(out, ruleRef{group: &r})
	}
	for _, r := range g.EgressRules() {
		out = append(out, ruleRef{egress: true, cidr: &r})
	}
	for _, r := range g.ToGroups {
		out = append(out, ruleRef{egress: true, group: &r})
	}
	return out
}

// ruleByID finds the rule of g with id.
func (g *SecurityGroupState) ruleByID(id string) (ruleRef, bool) {
	for _, r := range g.rules() {
		if g.idOf(r) == id {
			return r, true
		}
	}
	return ruleRef{}, false
}

// RulePermission is g's rule of one direction (outbound if egress) with
// id, as the permission that names it: what a Revoke or a description by
// SecurityGroupRuleId acts on.
func (g *SecurityGroupState) RulePermission(egress bool, id string) (Permission, bool) {
	r, ok := g.ruleByID(id)
	if !ok || r.egress != egress {
		return Permission{}, false
	}
	if r.group != nil {
		p := Permission{Protocol: ProtocolName(r.group.Proto), From: int(r.group.FromPort), To: int(r.group.ToPort)}
		if IsPrefixList(r.group.Group) {
			p.PrefixLists = []string{r.group.Group}
		} else {
			p.Groups = []string{r.group.Group}
		}
		return p, true
	}
	return Permission{Protocol: ProtocolName(r.cidr.Proto), From: int(r.cidr.FromPort), To: int(r.cidr.ToPort), CIDRs: []string{r.cidr.Source.String()}}, true
}

// setRuleID keeps id as the id of the rule named key ("" forgets it: the
// rule's id is derived from its content again).
func (g *SecurityGroupState) setRuleID(key, id string) {
	if id == "" {
		delete(g.RuleIDs, key)
		if len(g.RuleIDs) == 0 {
			g.RuleIDs = nil
		}
		return
	}
	if g.RuleIDs == nil {
		g.RuleIDs = map[string]string{}
	}
	g.RuleIDs[key] = id
}

// keepID makes id the id of g's rule r: remembered unless it is the one
// r's content derives.
func (g *SecurityGroupState) keepID(r ruleRef, id string) {
	g.setRuleID(r.key(), "")
	if g.idOf(r) != id {
		g.setRuleID(r.key(), id)
	}
}

// uniqueID gives the rule just added, r, an id no other rule of g has:
// its derived one unless a changed rule kept that, else one derived from
// its content and a counter.
func (g *SecurityGroupState) uniqueID(r ruleRef) {
	key := r.key()
	g.setRuleID(key, "")
	taken := map[string]bool{}
	for _, o := range g.rules() {
		if o.key() != key {
			taken[g.idOf(o)] = true
		}
	}
	id := g.idOf(r)
	for n := 2; taken[id]; n++ {
		id = hashedRuleID(fmt.Sprintf("%s|%s|%d", g.ID, key, n))
	}
	g.keepID(r, id)
}

// RuleChange is one rule of a ModifySecurityGroupRules call: the rule, by
// id, and what it becomes (a permission with one peer: a range or a
// group).
type RuleChange struct {
	ID   string
	Rule Permission
}

// ModifyRules changes rules of a group of the caller's in place (EC2's
// ModifySecurityGroupRules): each keeps its id, its direction and its place
// among the group's rules; its protocol, ports, peer and description are
// the ones given (a description left out is removed, as the whole rule is
// replaced). A change that would make a rule the same as another of the
// group's is refused as a duplicate.
func (s *State) ModifyRules(caller, groupID string, changes []RuleChange) error {
	g, ok := s.SecurityGroupByID(caller, groupID)
	if !ok {
		return &NotFoundError{"GroupId", groupID}
	}
	for _, ch := range changes {
		old, ok := g.ruleByID(ch.ID)
		if !ok {
			return &NotFoundError{"SecurityGroupRuleId", ch.ID}
		}
		p := ch.Rule
		if len(p.Peers()) != 1 {
			return refuse("rule %s: name one peer: CidrIpv4, CidrIpv6, ReferencedGroupId or PrefixListId", ch.ID)
		}
		cidrs, groups, err := p.rules()
		if err != nil {
			return err
		}
		if len(cidrs)+len(groups) == 0 {
			return refuse("rule %s: protocol %s is not modelled (only TCP reaches an endpoint): pvlink keeps TCP rules and rules for every protocol (-1)", ch.ID, p.Protocol)
		}
		var next ruleRef
		switch {
		case len(groups) == 1:
			if err := s.checkPeer(caller, g, groups[0].Group); err != nil {
				return err
			}
			next = ruleRef{egress: old.egress, group: &groups[0]}
		default:
			next = ruleRef{egress: old.egress, cidr: &cidrs[0]}
		}
		if next.key() != old.key() && slices.ContainsFunc(g.rules(), func(o ruleRef) bool { return o.key() == next.key() }) {
			return &DuplicateError{"Permission", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", p.Peers()[0], p.Protocol)}
		}
		g.replaceRule(old, next)
		g.setDescription(old.key(), "")
		g.setRuleID(old.key(), "")
		g.keepID(next, ch.ID)
		source := p.Peers()[0]
		if next.cidr != nil {
			source = next.cidr.Source.String()
		}
		if err := g.setDescription(next.key(), p.Descriptions[source]); err != nil {
			return err
		}
	}
	return nil
}

// replaceRule puts next where old was (they have the same direction), or,
// when the rule changes kind (a range for a group, or the other way),
// removes old and adds next at the end of next's kind.
func (g *SecurityGroupState) replaceRule(old, next ruleRef) {
	cidrs, groups := &g.Ingress, &g.FromGroups
	if old.egress {
		g.EgressSet, g.Egress = true, slices.Clone(g.EgressRules())
		cidrs, groups = &g.Egress, &g.ToGroups
	}
	switch {
	case old.cidr != nil && next.cidr != nil:
		(*cidrs)[slices.Index(*cidrs, *old.cidr)] = *next.cidr
	case old.group != nil && next.group != nil:
		(*groups)[slices.Index(*groups, *old.group)] = *next.group
	case old.cidr != nil:
		*cidrs = slices.DeleteFunc(*cidrs, func(o snapshot.SGRule) bool { return o == *old.cidr })
		*groups = append(*groups, *next.group)
	default:
		*groups = slices.DeleteFunc(*groups, func(o GroupRule) bool { return o == *old.group })
		*cidrs = append(*cidrs, *next.cidr)
	}
}
