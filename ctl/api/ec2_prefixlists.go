package api

import (
	"fmt"
	"slices"
	"strconv"

	"pvlink.dev/pvlink/ctl"
)

// Customer-managed prefix lists (ctl/prefixlists.go): made, listed, read
// at any of their versions, changed, restored and deleted, as EC2 does.

// managedPrefixList is EC2's ManagedPrefixList.
type managedPrefixList struct {
	ID            string    `xml:"prefixListId"`
	AddressFamily string    `xml:"addressFamily"`
	State         string    `xml:"state"`
	ARN           string    `xml:"prefixListArn"`
	Name          string    `xml:"prefixListName"`
	MaxEntries    int       `xml:"maxEntries"`
	Version       int64     `xml:"version"`
	Tags          []tagItem `xml:"tagSet>item,omitempty"`
	OwnerID       string    `xml:"ownerId"`
}

func prefixListOut(m *ctl.State, region string, p ctl.PrefixListState) managedPrefixList {
	return managedPrefixList{ID: p.ID, AddressFamily: p.AddressFamily, State: p.State,
		ARN:  fmt.Sprintf("arn:aws:ec2:%s:%s:prefix-list/%s", region, p.OwnerID, p.ID),
		Name: p.Name, MaxEntries: p.MaxEntries, Version: p.Current().Version, Tags: tagsOf(m, p.ID), OwnerID: p.OwnerID}
}

type prefixListEntry struct {
	CIDR        string `xml:"cidr"`
	Description string `xml:"description,omitempty"`
}

// entries reads a call's list of entries (Entry.N or AddEntry.N: Cidr and
// Description).
func (q query) entries(name string) []ctl.PrefixListEntry {
	var out []ctl.PrefixListEntry
	for _, e := range q.structs(name, "Cidr", "Description") {
		out = append(out, ctl.PrefixListEntry{CIDR: e["Cidr"], Description: e["Description"]})
	}
	return out
}

// value is a changed list as the answer takes it: the list, or the
// refusal.
func value(p *ctl.PrefixListState, err error) (ctl.PrefixListState, error) {
	if err != nil {
		return ctl.PrefixListState{}, err
	}
	return *p, nil
}

// version reads a version number; "" is 0 (not given).
func (q query) version(name string) (int64, error) {
	v := q.str(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, &apiError{400, "InvalidParameterValue", fmt.Sprintf("%s %q is not a version number", name, v)}
	}
	return n, nil
}

// ec2PrefixLists runs the actions on managed prefix lists. Any other
// action it answers with errNotThisArea.
func (h *Handler) ec2PrefixLists(m *ctl.State, caller, region, action string, q query) (any, error) {
	type one struct {
		PrefixList managedPrefixList `xml:"prefixList"`
	}
	// change runs op on the model and answers with the list it returns.
	change := func(op func(*ctl.State) (ctl.PrefixListState, error)) (any, error) {
		var out managedPrefixList
		_, err := h.b.Change(func(s *ctl.State) error {
			p, err := op(s)
			if err == nil {
				out = prefixListOut(s, region, p)
			}
			return err
		})
		return one{out}, err
	}
	switch action {
	case "CreateManagedPrefixList":
		maxEntries, err := strconv.Atoi(q.str("MaxEntries"))
		if err != nil {
			return nil, &apiError{400, "MissingParameter", "The request must contain the parameter MaxEntries (a number)"}
		}
		return change(func(s *ctl.State) (ctl.PrefixListState, error) {
			p, err := s.CreatePrefixList(caller, q.str("PrefixListName"), q.str("AddressFamily"), maxEntries, q.entries("Entry"))
			if err != nil {
				return ctl.PrefixListState{}, err
			}
			return *p, tagOnCreate(s, caller, q, "prefix-list", p.ID)
		})

	case "DescribeManagedPrefixLists":
		f := q.filters()
		if err := unknownFilters(f, "prefix-list-id", "prefix-list-name", "owner-id", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("PrefixListId")
		var out []managedPrefixList
		for _, p := range m.PrefixLists {
			fields := map[string][]string{"prefix-list-id": {p.ID}, "prefix-list-name": {p.Name}, "owner-id": {p.OwnerID}}
			if p.OwnerID == caller && (len(ids) == 0 || slices.Contains(ids, p.ID)) && match(f, withTags(fields, m.Tags[p.ID])) {
				out = append(out, prefixListOut(m, region, p))
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(p managedPrefixList) bool { return p.ID == id }) {
				return nil, &ctl.NotFoundError{Kind: "PrefixListID", ID: id}
			}
		}
		out, next, err := pageWithin(q, out, 1, 100)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []managedPrefixList `xml:"prefixListSet>item"`
			Next string              `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "GetManagedPrefixListEntries":
		p, err := m.PrefixList(caller, q.str("PrefixListId"))
		if err != nil {
			return nil, err
		}
		v, err := q.version("TargetVersion")
		if err != nil {
			return nil, err
		}
		at, ok := p.Current(), true
		if v != 0 {
			if at, ok = p.At(v); !ok {
				return nil, &apiError{400, "InvalidParameterValue", fmt.Sprintf("prefix list %s has no version %d (its current version is %d)", p.ID, v, p.Current().Version)}
			}
		}
		var out []prefixListEntry
		for _, e := range at.Entries {
			out = append(out, prefixListEntry{e.CIDR, e.Description})
		}
		out, next, err := pageWithin(q, out, 1, 100)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []prefixListEntry `xml:"entrySet>item"`
			Next string            `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "GetManagedPrefixListAssociations":
		if _, err := m.PrefixList(caller, q.str("PrefixListId")); err != nil {
			return nil, err
		}
		type association struct {
			ID    string `xml:"resourceId"`
			Owner string `xml:"resourceOwner"`
		}
		var out []association
		for _, g := range m.PrefixListUsers(q.str("PrefixListId")) {
			out = append(out, association{g.ID, g.OwnerID})
		}
		out, next, err := pageWithin(q, out, 5, 255)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []association `xml:"prefixListAssociationSet>item"`
			Next string        `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "ModifyManagedPrefixList":
		current, err := q.version("CurrentVersion")
		if err != nil {
			return nil, err
		}
		ch := ctl.PrefixListChange{CurrentVersion: current, Name: q.str("PrefixListName"), Add: q.entries("AddEntry")}
		for _, e := range q.structs("RemoveEntry", "Cidr") {
			ch.Remove = append(ch.Remove, e["Cidr"])
		}
		if v := q.str("MaxEntries"); v != "" {
			if ch.MaxEntries, err = strconv.Atoi(v); err != nil || ch.MaxEntries < 1 {
				return nil, &apiError{400, "InvalidParameterValue", fmt.Sprintf("MaxEntries %q is not a positive number", v)}
			}
		}
		return change(func(s *ctl.State) (ctl.PrefixListState, error) {
			return value(s.ModifyPrefixList(caller, q.str("PrefixListId"), ch))
		})

	case "RestoreManagedPrefixListVersion":
		previous, err1 := q.version("PreviousVersion")
		current, err2 := q.version("CurrentVersion")
		if err1 != nil || err2 != nil || previous == 0 || current == 0 {
			return nil, &apiError{400, "MissingParameter", "The request must contain the parameters PreviousVersion and CurrentVersion (version numbers)"}
		}
		return change(func(s *ctl.State) (ctl.PrefixListState, error) {
			return value(s.RestorePrefixListVersion(caller, q.str("PrefixListId"), previous, current))
		})

	case "DeleteManagedPrefixList":
		return change(func(s *ctl.State) (ctl.PrefixListState, error) {
			return s.DeletePrefixList(caller, q.str("PrefixListId"))
		})

	default:
		return nil, errNotThisArea
	}
}
