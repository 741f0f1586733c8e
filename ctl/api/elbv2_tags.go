package api

import (
	"errors"
	"fmt"
	"strings"

	"pvlink.dev/pvlink/ctl"
)

type elbTagMember struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// elbTagError names an unknown ARN as ELBv2 does.
func elbTagError(err error) error {
	var nf *ctl.NotFoundError
	if errors.As(err, &nf) && nf.Kind == "ID" {
		if strings.Contains(nf.ID, ":targetgroup/") {
			return &apiError{400, "TargetGroupNotFound", fmt.Sprintf("Target groups '%s' not found", nf.ID)}
		}
		return &apiError{400, "LoadBalancerNotFound", fmt.Sprintf("Load balancers '%s' not found", nf.ID)}
	}
	return err
}

// elbTags runs the actions on load balancers' and target groups' tags. Any
// other action it answers with errNotThisArea.
func (h *Handler) elbTags(m *modelView, caller, action string, q query) (any, error) {
	switch action {
	case "AddTags":
		arns := q.list("ResourceArns.member")
		tags := q.tags("Tags.member")
		_, err := h.b.Change(func(s *ctl.State) error { return s.TagResources(caller, arns, tags) })
		return struct{}{}, elbTagError(err)

	case "RemoveTags":
		arns := q.list("ResourceArns.member")
		var tags []ctl.Tag
		var withValue []bool
		for _, k := range q.list("TagKeys.member") {
			tags, withValue = append(tags, ctl.Tag{Key: k}), append(withValue, false)
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.UntagResources(caller, arns, tags, withValue) })
		return struct{}{}, elbTagError(err)

	case "DescribeTags":
		type tagged struct {
			ARN  string         `xml:"ResourceArn"`
			Tags []elbTagMember `xml:"Tags>member"`
		}
		var out []tagged
		for _, arn := range q.list("ResourceArns.member") {
			if o, ok := m.Owner(arn); !ok || o != caller {
				return nil, elbTagError(&ctl.NotFoundError{Kind: "ID", ID: arn})
			}
			d := tagged{ARN: arn}
			for _, t := range m.Tags[arn] {
				d.Tags = append(d.Tags, elbTagMember{t.Key, t.Value})
			}
			out = append(out, d)
		}
		return struct {
			Set []tagged `xml:"TagDescriptions>member"`
		}{out}, nil

	default:
		return nil, errNotThisArea
	}
}
