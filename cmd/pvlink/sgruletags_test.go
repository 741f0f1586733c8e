package main

import (
	"slices"
	"testing"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// ruleTag is what the CLI prints of a security group rule and its tags.
type ruleTag struct {
	SecurityGroupRuleId string
	IsEgress            bool
	Tags                []struct{ Key, Value string }
}

// ruleTags is what the CLI prints of security group rules.
type ruleTags struct{ SecurityGroupRules []ruleTag }

// ids are the rules' ids, in order.
func (r ruleTags) ids() []string {
	var out []string
	for _, x := range r.SecurityGroupRules {
		out = append(out, x.SecurityGroupRuleId)
	}
	return out
}

// Security group rules take tags as EC2's do: from the TagSpecifications
// of the Authorize that adds them, and by their sgr- ids (create-tags,
// delete-tags, describe-tags); describe-security-group-rules shows them
// and filters on them, not on the group's. A rule changed in place keeps
// its tags; a revoked rule's go with it, and the same rule added again
// starts with none. A TagSpecification for anything but a rule is refused
// and adds no rule.
func TestSecurityGroupRulesCarryTheirOwnTags(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := awsAs(t, f, "consumer")
	e := f.Status.Endpoints[0]

	var sg struct{ GroupId string }
	consumer.do(&sg, "create-security-group", "--vpc-id", e.VPCID, "--group-name", "tagged", "--description", "rules with tags",
		"--tag-specifications", "ResourceType=security-group,Tags=[{Key=team,Value=group}]")
	var added ruleTags
	consumer.do(&added, "authorize-security-group-ingress", "--group-id", sg.GroupId,
		"--ip-permissions", "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=198.18.2.0/24}]",
		"--tag-specifications", "ResourceType=security-group-rule,Tags=[{Key=team,Value=web},{Key=port,Value=80}]")
	if r := added.SecurityGroupRules; len(r) != 1 || len(r[0].Tags) != 2 || r[0].Tags[0].Key != "team" || r[0].Tags[0].Value != "web" {
		t.Fatalf("authorize-security-group-ingress with tags added %+v", added)
	}
	rule := added.SecurityGroupRules[0].SecurityGroupRuleId

	var all ruleTags
	consumer.do(&all, "describe-security-group-rules", "--filters", "Name=group-id,Values="+sg.GroupId)
	if len(all.SecurityGroupRules) != 2 {
		t.Fatalf("the group's rules: %+v, want the inbound one and the default outbound one", all)
	}
	egress := all.SecurityGroupRules[slices.IndexFunc(all.SecurityGroupRules, func(r ruleTag) bool { return r.IsEgress })].SecurityGroupRuleId

	// Filters match the rule's tags: the group's tag names no rule.
	var byTag ruleTags
	consumer.do(&byTag, "describe-security-group-rules", "--filters", "Name=tag:team,Values=web")
	if !slices.Equal(byTag.ids(), []string{rule}) {
		t.Fatalf("tag:team=web matched %v, want [%s]", byTag.ids(), rule)
	}
	consumer.do(&byTag, "describe-security-group-rules", "--filters", "Name=tag:team,Values=group")
	if len(byTag.SecurityGroupRules) != 0 {
		t.Fatalf("the group's tag matched rules %v", byTag.ids())
	}

	// By id: the default outbound rule takes a tag too.
	consumer.do(nil, "create-tags", "--resources", egress, "--tags", "Key=team,Value=ops")
	var tags struct {
		Tags []struct{ Key, Value, ResourceId, ResourceType string }
	}
	consumer.do(&tags, "describe-tags", "--filters", "Name=resource-type,Values=security-group-rule", "Name=key,Values=team")
	if len(tags.Tags) != 2 {
		t.Fatalf("describe-tags of rules: %+v, want team on both", tags)
	}
	consumer.do(nil, "delete-tags", "--resources", rule, "--tags", "Key=port")
	consumer.do(&byTag, "describe-security-group-rules", "--security-group-rule-ids", rule)
	if r := byTag.SecurityGroupRules; len(r) != 1 || len(r[0].Tags) != 1 || r[0].Tags[0].Key != "team" {
		t.Fatalf("after delete-tags of port: %+v", byTag)
	}

	// A TagSpecification for another resource type: refused, no rule.
	consumer.refused("InvalidParameterValue", "authorize-security-group-ingress", "--group-id", sg.GroupId,
		"--ip-permissions", "IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=198.18.2.0/24}]",
		"--tag-specifications", "ResourceType=security-group,Tags=[{Key=team,Value=web}]")
	consumer.do(&all, "describe-security-group-rules", "--filters", "Name=group-id,Values="+sg.GroupId)
	if len(all.SecurityGroupRules) != 2 {
		t.Fatalf("a refused authorize left rules %v", all.ids())
	}

	// Changed in place: same id, same tags.
	consumer.do(nil, "modify-security-group-rules", "--group-id", sg.GroupId, "--security-group-rules",
		"SecurityGroupRuleId="+rule+",SecurityGroupRule={IpProtocol=tcp,FromPort=8080,ToPort=8080,CidrIpv4=198.18.2.0/24}")
	consumer.do(&byTag, "describe-security-group-rules", "--filters", "Name=tag:team,Values=web")
	if !slices.Equal(byTag.ids(), []string{rule}) {
		t.Fatalf("after modify-security-group-rules, tag:team=web matched %v, want [%s]", byTag.ids(), rule)
	}

	// Revoked: its tags go with it; added again, it has none.
	consumer.do(nil, "revoke-security-group-ingress", "--group-id", sg.GroupId, "--security-group-rule-ids", rule)
	consumer.do(&tags, "describe-tags", "--filters", "Name=resource-id,Values="+rule)
	if len(tags.Tags) != 0 {
		t.Fatalf("a revoked rule's tags stayed: %+v", tags)
	}
	consumer.refused("InvalidID", "create-tags", "--resources", rule, "--tags", "Key=team,Value=web")
	consumer.do(&added, "authorize-security-group-ingress", "--group-id", sg.GroupId,
		"--ip-permissions", "IpProtocol=tcp,FromPort=8080,ToPort=8080,IpRanges=[{CidrIp=198.18.2.0/24}]")
	if r := added.SecurityGroupRules; len(r) != 1 || len(r[0].Tags) != 0 {
		t.Fatalf("the rule added again: %+v, want no tags", added)
	}
}
