package api

import (
	"fmt"
	"slices"
	"strconv"

	"pvlink.dev/pvlink/ctl"
)

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagsOf(m *ctl.State, id string) []tagItem {
	var out []tagItem
	for _, t := range m.Tags[id] {
		out = append(out, tagItem{t.Key, t.Value})
	}
	return out
}

// tagOnCreate applies a create call's TagSpecification for its resource
// type to the resource it made.
func tagOnCreate(s *ctl.State, caller string, q query, resourceType, id string) error {
	for i := 1; ; i++ {
		prefix := "TagSpecification." + strconv.Itoa(i)
		typ := q.str(prefix + ".ResourceType")
		if typ == "" {
			return nil
		}
		if typ != resourceType {
			return &apiError{400, "InvalidParameterValue", fmt.Sprintf("TagSpecification.%d.ResourceType %q: this call makes a %s", i, typ, resourceType)}
		}
		if tags := q.tags(prefix + ".Tag"); len(tags) > 0 {
			if err := s.TagResources(caller, []string{id}, tags); err != nil {
				return err
			}
		}
	}
}

// ownerOf is the account that owns a tagged resource.
func ownerOf(m *ctl.State, id string) (string, bool) { return m.Owner(id) }

// ec2Tags runs the actions on EC2 resources' tags. Any other action it
// answers with errNotThisArea.
func (h *Handler) ec2Tags(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
	case "CreateTags":
		tags := q.tags("Tag")
		_, err := h.b.Change(func(s *ctl.State) error { return s.TagResources(caller, q.list("ResourceId"), tags) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteTags":
		var tags []ctl.Tag
		var withValue []bool
		for _, t := range q.structs("Tag", "Key", "Value") {
			tags = append(tags, ctl.Tag{Key: t["Key"], Value: t["Value"]})
			_, has := t["Value"]
			withValue = append(withValue, has)
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.UntagResources(caller, q.list("ResourceId"), tags, withValue) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DescribeTags":
		f := q.filters()
		if err := unknownFilters(f, "resource-id", "resource-type", "key", "value"); err != nil {
			return nil, err
		}
		type tagDescription struct {
			Key  string `xml:"key"`
			ID   string `xml:"resourceId"`
			Type string `xml:"resourceType"`
			Val  string `xml:"value"`
		}
		var out []tagDescription
		ids := make([]string, 0, len(m.Tags))
		for id := range m.Tags {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if o, ok := ownerOf(m, id); !ok || o != caller {
				continue
			}
			for _, t := range m.Tags[id] {
				if match(f, map[string][]string{"resource-id": {id}, "resource-type": {ctl.ResourceType(id)}, "key": {t.Key}, "value": {t.Value}}) {
					out = append(out, tagDescription{t.Key, id, ctl.ResourceType(id), t.Value})
				}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []tagDescription `xml:"tagSet>item"`
			Next string           `xml:"nextToken,omitempty"`
		}{out, next}, nil

	default:
		return nil, errNotThisArea
	}
}
