package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

type ipRange struct {
	CIDR        string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type ipv6Range struct {
	CIDR        string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

// groupPair is EC2's UserIdGroupPair: a security group as a rule's source.
type groupPair struct {
	GroupID     string `xml:"groupId"`
	UserID      string `xml:"userId"`
	Description string `xml:"description,omitempty"`
}

// prefixListPeer is EC2's PrefixListId: a prefix list as a rule's peer.
type prefixListPeer struct {
	ID          string `xml:"prefixListId"`
	Description string `xml:"description,omitempty"`
}

type ipPermission struct {
	Protocol    string           `xml:"ipProtocol"`
	From        int              `xml:"fromPort"`
	To          int              `xml:"toPort"`
	Groups      []groupPair      `xml:"groups>item"`
	V4          []ipRange        `xml:"ipRanges>item"`
	V6          []ipv6Range      `xml:"ipv6Ranges>item"`
	PrefixLists []prefixListPeer `xml:"prefixListIds>item"`
}

type securityGroup struct {
	OwnerID     string         `xml:"ownerId"`
	Name        string         `xml:"groupName"`
	ID          string         `xml:"groupId"`
	Description string         `xml:"groupDescription"`
	VPCID       string         `xml:"vpcId"`
	Ingress     []ipPermission `xml:"ipPermissions>item"`
	Egress      []ipPermission `xml:"ipPermissionsEgress>item"`
}

func securityGroupOut(g ctl.SecurityGroupState, vpcID string) securityGroup {
	return securityGroup{OwnerID: g.OwnerID, Name: g.Name, ID: g.ID, Description: g.Description, VPCID: vpcID,
		Ingress: append(permissionsOut(g, false, g.Ingress), groupPermissionsOut(g, false)...),
		Egress:  append(permissionsOut(g, true, g.EgressRules()), groupPermissionsOut(g, true)...)}
}

// groupPermissionsOut are g's rules of one direction whose peer is a group
// (of g's owner's) or a prefix list, as EC2 lists them: one permission per
// rule, the group as a UserIdGroupPair, the list as a PrefixListId.
func groupPermissionsOut(g ctl.SecurityGroupState, egress bool) []ipPermission {
	var out []ipPermission
	for _, r := range g.GroupRules(egress) {
		var p ipPermission
		p.Protocol, p.From, p.To = groupRuleFields(r)
		if desc := g.GroupRuleDescription(egress, r); ctl.IsPrefixList(r.Group) {
			p.PrefixLists = []prefixListPeer{{r.Group, desc}}
		} else {
			p.Groups = []groupPair{{GroupID: r.Group, UserID: g.OwnerID, Description: desc}}
		}
		out = append(out, p)
	}
	return out
}

// permissionsOut are g's rules of one direction as EC2 lists them: one
// permission per rule.
func permissionsOut(g ctl.SecurityGroupState, egress bool, rules []snapshot.SGRule) []ipPermission {
	var out []ipPermission
	for _, r := range rules {
		var p ipPermission
		p.Protocol, p.From, p.To = ruleFields(r)
		if desc := g.RuleDescription(egress, r); r.Source.Addr().Is4() {
			p.V4 = []ipRange{{r.Source.String(), desc}}
		} else {
			p.V6 = []ipv6Range{{r.Source.String(), desc}}
		}
		out = append(out, p)
	}
	return out
}

// permissionFilters are DescribeSecurityGroups' filters on one direction's
// rules, each behind prefix (ip-permission. or egress.ip-permission.).
func permissionFilters(prefix string) []string {
	var out []string
	for _, f := range []string{"cidr", "ipv6-cidr", "group-id", "prefix-list-id", "protocol", "from-port", "to-port"} {
		out = append(out, prefix+f)
	}
	return out
}

// groupFields are what DescribeSecurityGroups' filters match group sg by:
// an ip-permission. filter passes if any inbound rule has the value, an
// egress.ip-permission. one if any outbound rule has.
func groupFields(sg securityGroup) map[string][]string {
	fields := map[string][]string{"vpc-id": {sg.VPCID}, "group-id": {sg.ID}, "group-name": {sg.Name}, "owner-id": {sg.OwnerID}, "description": {sg.Description}}
	for prefix, perms := range map[string][]ipPermission{"ip-permission.": sg.Ingress, "egress.ip-permission.": sg.Egress} {
		for _, name := range permissionFilters(prefix) {
			fields[name] = nil // known: a filter on it passes no group without such rules
		}
		for _, p := range perms {
			fields[prefix+"protocol"] = append(fields[prefix+"protocol"], p.Protocol)
			fields[prefix+"from-port"] = append(fields[prefix+"from-port"], strconv.Itoa(p.From))
			fields[prefix+"to-port"] = append(fields[prefix+"to-port"], strconv.Itoa(p.To))
			for _, r := range p.V4 {
				fields[prefix+"cidr"] = append(fields[prefix+"cidr"], r.CIDR)
			}
			for _, r := range p.V6 {
				fields[prefix+"ipv6-cidr"] = append(fields[prefix+"ipv6-cidr"], r.CIDR)
			}
			for _, r := range p.Groups {
				fields[prefix+"group-id"] = append(fields[prefix+"group-id"], r.GroupID)
			}
			for _, r := range p.PrefixLists {
				fields[prefix+"prefix-list-id"] = append(fields[prefix+"prefix-list-id"], r.ID)
			}
		}
	}
	return fields
}

// noDefaultVPC refuses a group named by name alone (GroupName,
// GroupName.N): EC2 looks such names up in the default VPC only, and a
// fabric has none. nil if the call names no group that way.
func noDefaultVPC(action string, q query) error {
	names := q.list("GroupName")
	if action != "DescribeSecurityGroups" {
		if q.str("GroupId") != "" || q.str("GroupName") == "" {
			return nil
		}
		names = []string{q.str("GroupName")}
	}
	if len(names) == 0 {
		return nil
	}
	return &apiError{400, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist in default VPC 'none': a fabric has no default VPC, so name a group by its id (GroupId), or find it with the group-name filter", names[0])}
}

// ec2SecurityGroups runs the actions on security groups and their rules.
// Any other action it answers with errNotThisArea.
func (h *Handler) ec2SecurityGroups(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
	case "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress", "DescribeSecurityGroups",
		"UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress":
		if err := noDefaultVPC(action, q); err != nil {
			return nil, err
		}
	}
	switch action {
	case "CreateSecurityGroup":
		if q.str("VpcId") == "" {
			return nil, &apiError{400, "VPCIdNotSpecified", "No default VPC for this user: name the VPC of the group (VpcId)"}
		}
		var id string
		_, err := h.b.Change(func(s *ctl.State) error {
			g, err := s.CreateSecurityGroup(caller, q.str("VpcId"), q.str("GroupName"), q.str("GroupDescription"))
			if err != nil {
				return err
			}
			id = g.ID
			return nil
		})
		return struct {
			ID string `xml:"groupId"`
		}{id}, err

	case "DeleteSecurityGroup":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteSecurityGroup(caller, q.str("GroupId")) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress":
		perms, group, egress := q.permissions(), q.str("GroupId"), strings.HasSuffix(action, "Egress")
		if ids := q.list("SecurityGroupRuleId"); len(ids) > 0 && strings.HasPrefix(action, "Revoke") {
			byID, err := rulePermissions(m, caller, group, egress, ids)
			if err != nil {
				return nil, err
			}
			perms = append(perms, byID...)
		}
		change := map[string]func(*ctl.State, string, string, []ctl.Permission) error{
			"AuthorizeSecurityGroupIngress": (*ctl.State).AuthorizeIngress, "RevokeSecurityGroupIngress": (*ctl.State).RevokeIngress,
			"AuthorizeSecurityGroupEgress": (*ctl.State).AuthorizeEgress, "RevokeSecurityGroupEgress": (*ctl.State).RevokeEgress,
		}[action]
		authorize := strings.HasPrefix(action, "Authorize")
		if _, err := h.b.Change(func(s *ctl.State) error {
			had := groupRulesIn(s, caller, group, egress)
			if err := change(s, caller, group, perms); err != nil {
				return err
			}
			if !authorize {
				return nil
			}
			// TagSpecifications tag every rule the call adds, in the
			// same change: a refused tag adds no rule.
			for _, r := range newRules(had, groupRulesIn(s, caller, group, egress)) {
				if err := tagOnCreate(s, caller, q, "security-group-rule", r.ID); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
		out := struct {
			Return bool     `xml:"return"`
			Added  []sgRule `xml:"securityGroupRuleSet>item,omitempty"`
		}{Return: true}
		if authorize {
			after := h.b.Model()
			out.Added = withRuleTags(after, addedRules(m, after, caller, group, egress)) // the rules it added, with their ids
		}
		return out, nil

	case "UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress":
		perms, group, egress := q.permissions(), q.str("GroupId"), strings.HasSuffix(action, "Egress")
		var ids []string
		byID := map[string]string{}
		for _, d := range q.structs("SecurityGroupRuleDescription", "SecurityGroupRuleId", "Description") {
			ids = append(ids, d["SecurityGroupRuleId"])
			byID[d["SecurityGroupRuleId"]] = d["Description"]
		}
		if len(ids) > 0 {
			named, err := rulePermissions(m, caller, group, egress, ids)
			if err != nil {
				return nil, err
			}
			for i, p := range named { // one per id, in order, each with one peer
				named[i].Describe(p.Peers()[0], byID[ids[i]])
			}
			perms = append(perms, named...)
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.UpdateRuleDescriptions(caller, group, egress, perms) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DescribeSecurityGroupRules":
		return describeSecurityGroupRules(m, caller, q)

	case "ModifySecurityGroupRules":
		group := q.str("GroupId")
		if group == "" {
			return nil, &apiError{400, "MissingParameter", "The request must contain the parameter GroupId"}
		}
		changes, err := q.ruleChanges()
		if err != nil {
			return nil, err
		}
		_, err = h.b.Change(func(s *ctl.State) error { return s.ModifyRules(caller, group, changes) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DescribeSecurityGroups":
		f := q.filters()
		known := append([]string{"vpc-id", "group-id", "group-name", "owner-id", "description", tagFilters}, permissionFilters("ip-permission.")...)
		if err := unknownFilters(f, append(known, permissionFilters("egress.ip-permission.")...)...); err != nil {
			return nil, err
		}
		ids := q.list("GroupId")
		var out []securityGroup
		for _, g := range m.SecurityGroups {
			if g.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, g.ID) {
				continue
			}
			vpcID := ""
			for _, v := range m.VPCs {
				if v.Name == g.VPC {
					vpcID = v.ID
				}
			}
			if sg := securityGroupOut(g, vpcID); match(f, withTags(groupFields(sg), m.Tags[g.ID])) {
				out = append(out, sg)
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(g securityGroup) bool { return g.ID == id }) {
				return nil, &apiError{400, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []securityGroup `xml:"securityGroupInfo>item"`
			Next string          `xml:"nextToken,omitempty"`
		}{out, next}, nil

	default:
		return nil, errNotThisArea
	}
}
