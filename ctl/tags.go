package ctl

import (
	"fmt"
	"slices"
	"strings"
)

// Tags: key-value pairs on the resources the EC2 API tags (VPCs, subnets,
// endpoints, endpoint services, security groups and their rules, ...),
// kept by resource id. A tag says nothing to the data path.

// Tag is one tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ResourceType is the EC2 resource type of an id, or "" for one EC2 does
// not tag here.
func ResourceType(id string) string {
	switch {
	case strings.HasPrefix(id, "vpce-svc-"):
		return "vpc-endpoint-service"
	case strings.HasPrefix(id, "vpce-nfn-"):
		return ""
	case strings.HasPrefix(id, "vpce-"):
		return "vpc-endpoint"
	case strings.HasPrefix(id, "vpc-"):
		return "vpc"
	case strings.HasPrefix(id, "subnet-"):
		return "subnet"
	case strings.HasPrefix(id, "sg-"):
		return "security-group"
	case strings.HasPrefix(id, "sgr-"):
		return "security-group-rule"
	case strings.HasPrefix(id, "fl-"):
		return "vpc-flow-log"
	case IsPrefixList(id):
		return "prefix-list"
	case strings.HasPrefix(id, "arn:aws:elasticloadbalancing:") && strings.Contains(id, ":loadbalancer/"):
		return "loadbalancer"
	case strings.HasPrefix(id, "arn:aws:elasticloadbalancing:") && strings.Contains(id, ":targetgroup/"):
		return "targetgroup"
	}
	return ""
}

// Owner is the account that owns a taggable resource, if it exists.
func (s *State) Owner(id string) (string, bool) { return s.owner(id) }

func (s *State) owner(id string) (string, bool) {
	switch ResourceType(id) {
	case "vpc-endpoint-service":
		if svc, ok := s.ServiceByID(id); ok {
			return svc.OwnerID, true
		}
	case "vpc-endpoint":
		if e, ok := s.EndpointByID(id); ok {
			return e.OwnerID, true
		}
	case "vpc":
		for _, v := range s.VPCs {
			if v.ID == id {
				return v.OwnerID, true
			}
		}
	case "subnet":
		for _, v := range s.VPCs {
			if _, ok := v.subnet(id); ok {
				return v.OwnerID, true
			}
		}
	case "vpc-flow-log":
		for _, f := range s.FlowLogs {
			if f.ID == id {
				return f.OwnerID, true
			}
		}
	case "prefix-list":
		for _, p := range s.PrefixLists {
			if p.ID == id {
				return p.OwnerID, true
			}
		}
	case "security-group":
		for _, g := range s.SecurityGroups {
			if g.ID == id {
				return g.OwnerID, true
			}
		}
	case "security-group-rule":
		// A rule's tags go with it: revoked, its id names nothing (and
		// the same rule added again starts with none).
		for _, g := range s.SecurityGroups {
			if _, ok := g.ruleByID(id); ok {
				return g.OwnerID, true
			}
		}
	case "loadbalancer":
		// ELBv2 resources are tagged by ARN; the id is its last part.
		last := id[strings.LastIndexByte(id, '/')+1:]
		for _, lb := range s.LoadBalancers {
			if lb.ID == last {
				return lb.OwnerID, true
			}
		}
	case "targetgroup":
		last := id[strings.LastIndexByte(id, '/')+1:]
		for _, tg := range s.TargetGroups {
			if tg.ID == last {
				return tg.OwnerID, true
			}
		}
	}
	return "", false
}

// maxTags is AWS's limit of tags per resource.
const maxTags = 50

// TagResources sets tags on resources of the caller's.
func (s *State) TagResources(caller string, ids []string, tags []Tag) error {
	if len(ids) == 0 || len(tags) == 0 {
		return refuse("name at least one resource (ResourceId) and one tag (Tag.1.Key)")
	}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 || strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return refuse("tag key %q: 1 to 128 characters, not starting with aws: (values up to 256)", t.Key)
		}
	}
	for _, id := range ids {
		if o, ok := s.owner(id); !ok || o != caller {
			return &NotFoundError{"ID", id}
		}
	}
	if s.Tags == nil {
		s.Tags = map[string][]Tag{}
	}
	for _, id := range ids {
		cur := s.Tags[id]
		for _, t := range tags {
			if i := slices.IndexFunc(cur, func(o Tag) bool { return o.Key == t.Key }); i >= 0 {
				cur[i].Value = t.Value
			} else {
				cur = append(cur, t)
			}
		}
		if len(cur) > maxTags {
			return refuse("resource %s would have %d tags; AWS allows %d", id, len(cur), maxTags)
		}
		s.Tags[id] = cur
	}
	return nil
}

// UntagResources removes tags (a tag with a value only if it matches).
func (s *State) UntagResources(caller string, ids []string, tags []Tag, withValue []bool) error {
	for _, id := range ids {
		if o, ok := s.owner(id); !ok || o != caller {
			return &NotFoundError{"ID", id}
		}
		if len(tags) == 0 {
			delete(s.Tags, id)
			continue
		}
		s.Tags[id] = slices.DeleteFunc(s.Tags[id], func(o Tag) bool {
			for i, t := range tags {
				if t.Key == o.Key && (!withValue[i] || t.Value == o.Value) {
					return true
				}
			}
			return false
		})
		if len(s.Tags[id]) == 0 {
			delete(s.Tags, id)
		}
	}
	return nil
}

// dropTagsOfGone forgets the tags of resources that no longer exist.
func (s *State) dropTagsOfGone() {
	for id := range s.Tags {
		if _, ok := s.owner(id); !ok {
			delete(s.Tags, id)
		}
	}
}

func (t Tag) String() string { return fmt.Sprintf("%s=%s", t.Key, t.Value) }
