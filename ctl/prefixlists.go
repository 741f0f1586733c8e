package ctl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Customer-managed prefix lists: named sets of ranges an account keeps
// (EC2's CreateManagedPrefixList and the rest) and names as a security
// group rule's peer, in place of a range or a group. A rule that names one
// reaches the forwarders as one rule per range of the list's current
// version, so a change to the list changes what every group naming it lets
// in, as in EC2. Every change of the entries makes a new version; the
// earlier ones are kept, to be read or restored.

// PrefixListState is a prefix list of an account's.
type PrefixListState struct {
	ID            string `json:"id"` // pl-...
	OwnerID       string `json:"owner_id"`
	Name          string `json:"name"`
	AddressFamily string `json:"address_family"` // IPv4 or IPv6
	MaxEntries    int    `json:"max_entries"`
	// State is EC2's: create-complete, modify-complete or
	// restore-complete (changes take effect at once here).
	State string `json:"state"`
	// Versions are the list's entries at each of its versions, oldest
	// first; the last is the current one.
	Versions []PrefixListVersion `json:"versions"`
}

// PrefixListVersion is a list's entries at one of its versions.
type PrefixListVersion struct {
	Version int64             `json:"version"`
	Entries []PrefixListEntry `json:"entries,omitempty"`
}

// PrefixListEntry is a range of a list, with its description.
type PrefixListEntry struct {
	CIDR        string `json:"cidr"`
	Description string `json:"description,omitempty"`
}

// maxPrefixListEntries is EC2's largest MaxEntries.
const maxPrefixListEntries = 1000

// IsPrefixList says whether a rule's peer id names a prefix list (pl-...)
// rather than a security group.
func IsPrefixList(id string) bool { return strings.HasPrefix(id, "pl-") }

// Current is the list's current version.
func (p *PrefixListState) Current() PrefixListVersion { return p.Versions[len(p.Versions)-1] }

// At is the list's entries at version v, if it had that version.
func (p *PrefixListState) At(v int64) (PrefixListVersion, bool) {
	i := slices.IndexFunc(p.Versions, func(o PrefixListVersion) bool { return o.Version == v })
	if i < 0 {
		return PrefixListVersion{}, false
	}
	return p.Versions[i], true
}

// PrefixListByID finds a prefix list of the caller's.
func (s *State) PrefixListByID(caller, id string) (*PrefixListState, bool) {
	for i := range s.PrefixLists {
		if s.PrefixLists[i].ID == id && s.PrefixLists[i].OwnerID == caller {
			return &s.PrefixLists[i], true
		}
	}
	return nil, false
}

// PrefixList is PrefixListByID with the refusal for a list the caller
// has not (InvalidPrefixListID.NotFound).
func (s *State) PrefixList(caller, id string) (*PrefixListState, error) {
	p, ok := s.PrefixListByID(caller, id)
	if !ok {
		return nil, &NotFoundError{"PrefixListID", id}
	}
	return p, nil
}

// CreatePrefixList makes a list of the caller's at version 1.
func (s *State) CreatePrefixList(caller, name, family string, maxEntries int, entries []PrefixListEntry) (*PrefixListState, error) {
	if err := checkPrefixListName(name); err != nil {
		return nil, err
	}
	if family != "IPv4" && family != "IPv6" {
		return nil, refuse("address family %q: IPv4 or IPv6", family)
	}
	if maxEntries < 1 || maxEntries > maxPrefixListEntries {
		return nil, refuse("max entries %d: 1 to %d", maxEntries, maxPrefixListEntries)
	}
	p := PrefixListState{ID: newID("pl-"), OwnerID: caller, Name: name, AddressFamily: family, MaxEntries: maxEntries, State: "create-complete"}
	next, err := p.changed(PrefixListVersion{}, entries, nil)
	if err != nil {
		return nil, err
	}
	next.Version = 1
	p.Versions = []PrefixListVersion{next}
	s.PrefixLists = append(s.PrefixLists, p)
	return &s.PrefixLists[len(s.PrefixLists)-1], nil
}

// checkPrefixListName refuses a name EC2 refuses.
func checkPrefixListName(name string) error {
	if name == "" || len(name) > 255 || strings.HasPrefix(name, "com.amazonaws") {
		return refuse("prefix list name %q: 1 to 255 characters, not starting with com.amazonaws", name)
	}
	return nil
}

// changed is from with add added (a range it has gets the description
// given) and remove removed, checked against the list's family and size.
func (p *PrefixListState) changed(from PrefixListVersion, add []PrefixListEntry, remove []string) (PrefixListVersion, error) {
	entries := slices.Clone(from.Entries)
	for _, c := range remove {
		pfx, err := p.parse(c)
		if err != nil {
			return from, err
		}
		i := slices.IndexFunc(entries, func(e PrefixListEntry) bool { return e.CIDR == pfx.String() })
		if i < 0 {
			return from, &prefixListError{fmt.Sprintf("the entry %s is not in prefix list %s", pfx, p.ID)}
		}
		entries = slices.Delete(entries, i, i+1)
	}
	for _, e := range add {
		pfx, err := p.parse(e.CIDR)
		if err != nil {
			return from, err
		}
		if slices.Contains(remove, e.CIDR) || slices.Contains(remove, pfx.String()) {
			return from, &prefixListError{fmt.Sprintf("the entry %s is both added and removed", pfx)}
		}
		if len(e.Description) > 255 {
			return from, refuse("the description of entry %s is longer than 255 characters", pfx)
		}
		e.CIDR = pfx.String()
		if i := slices.IndexFunc(entries, func(o PrefixListEntry) bool { return o.CIDR == e.CIDR }); i >= 0 {
			entries[i] = e
		} else {
			entries = append(entries, e)
		}
	}
	if len(entries) > p.MaxEntries {
		return from, &prefixListError{fmt.Sprintf("prefix list %s would have %d entries, more than its maximum of %d", p.ID, len(entries), p.MaxEntries)}
	}
	return PrefixListVersion{Version: from.Version + 1, Entries: entries}, nil
}

// parse reads a range of the list's address family, masked.
func (p *PrefixListState) parse(c string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(c)
	if err != nil {
		return pfx, refuse("%q is not a CIDR range", c)
	}
	if pfx.Addr().Is4() != (p.AddressFamily == "IPv4") {
		return pfx, refuse("%s is not an %s range: the prefix list's address family is %s", c, p.AddressFamily, p.AddressFamily)
	}
	return pfx.Masked(), nil
}

// prefixListError is a change to a list's entries or size that EC2 refuses
// as InvalidPrefixListModification.
type prefixListError struct{ msg string }

func (e *prefixListError) Error() string { return e.msg }

// IsPrefixListModification says whether err is such a refusal.
func IsPrefixListModification(err error) bool {
	_, ok := err.(*prefixListError)
	return ok
}

// VersionMismatchError is a change that named a version other than the
// list's current one.
type VersionMismatchError struct{ ID string }

func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("The prefix list %s has the incorrect version number.", e.ID)
}

// PrefixListChange is what ModifyManagedPrefixList asks: CurrentVersion
// (0: not given), a new name, entries to add and remove, or a new size.
type PrefixListChange struct {
	CurrentVersion int64
	Name           string
	Add            []PrefixListEntry
	Remove         []string
	MaxEntries     int
}

// ModifyPrefixList renames a list of the caller's, changes its entries (a
// new version) or its size. Entries and size do not change together, as
// in EC2; a size below the entries it has is refused.
func (s *State) ModifyPrefixList(caller, id string, ch PrefixListChange) (*PrefixListState, error) {
	p, err := s.PrefixList(caller, id)
	if err != nil {
		return nil, err
	}
	cur := p.Current()
	if ch.CurrentVersion != 0 && ch.CurrentVersion != cur.Version {
		return nil, &VersionMismatchError{id}
	}
	entries := len(ch.Add) > 0 || len(ch.Remove) > 0
	switch {
	case entries && ch.MaxEntries != 0:
		return nil, &prefixListError{"change a prefix list's entries or its maximum, not both at once"}
	case ch.MaxEntries != 0 && (ch.MaxEntries < len(cur.Entries) || ch.MaxEntries > maxPrefixListEntries):
		return nil, &prefixListError{fmt.Sprintf("max entries %d: at least the %d entries the list has, at most %d", ch.MaxEntries, len(cur.Entries), maxPrefixListEntries)}
	case ch.MaxEntries != 0:
		p.MaxEntries = ch.MaxEntries
	}
	if ch.Name != "" {
		if err := checkPrefixListName(ch.Name); err != nil {
			return nil, err
		}
		p.Name = ch.Name
	}
	if entries {
		next, err := p.changed(cur, ch.Add, ch.Remove)
		if err != nil {
			return nil, err
		}
		p.Versions = append(p.Versions, next)
	}
	p.State = "modify-complete"
	return p, nil
}

// RestorePrefixListVersion makes the entries of an earlier version the
// list's next version.
func (s *State) RestorePrefixListVersion(caller, id string, previous, current int64) (*PrefixListState, error) {
	p, err := s.PrefixList(caller, id)
	if err != nil {
		return nil, err
	}
	cur := p.Current()
	if current != cur.Version {
		return nil, &VersionMismatchError{id}
	}
	old, ok := p.At(previous)
	if !ok || previous == cur.Version {
		return nil, &prefixListError{fmt.Sprintf("prefix list %s has no earlier version %d (its current version is %d)", id, previous, cur.Version)}
	}
	if len(old.Entries) > p.MaxEntries {
		return nil, &prefixListError{fmt.Sprintf("version %d has %d entries, more than the list's maximum of %d", previous, len(old.Entries), p.MaxEntries)}
	}
	p.Versions = append(p.Versions, PrefixListVersion{Version: cur.Version + 1, Entries: slices.Clone(old.Entries)})
	p.State = "restore-complete"
	return p, nil
}

// PrefixListUsers are the security groups whose rules name list id.
func (s *State) PrefixListUsers(id string) []SecurityGroupState {
	var out []SecurityGroupState
	for _, g := range s.SecurityGroups {
		if slices.ContainsFunc(append(slices.Clone(g.FromGroups), g.ToGroups...), func(r GroupRule) bool { return r.Group == id }) {
			out = append(out, g)
		}
	}
	return out
}

// DeletePrefixList deletes a list of the caller's that no rule names.
func (s *State) DeletePrefixList(caller, id string) (PrefixListState, error) {
	p, err := s.PrefixList(caller, id)
	if err != nil {
		return PrefixListState{}, err
	}
	if users := s.PrefixListUsers(id); len(users) > 0 {
		return PrefixListState{}, &DependencyError{fmt.Sprintf("resource %s has a dependent object: a rule of security group %s names it", id, users[0].ID)}
	}
	gone := *p
	gone.State = "delete-complete"
	s.PrefixLists = slices.DeleteFunc(s.PrefixLists, func(o PrefixListState) bool { return o.ID == id })
	delete(s.Tags, id)
	return gone, nil
}

// prefixListRanges are the ranges of list id's current version.
func (s *State) prefixListRanges(id string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s.PrefixLists {
		if p.ID != id {
			continue
		}
		for _, e := range p.Current().Entries {
			if pfx, err := netip.ParsePrefix(e.CIDR); err == nil {
				out = append(out, pfx)
			}
		}
	}
	return out
}

// checkPeer refuses a rule peer of group g that is neither a group of the
// caller's in g's VPC nor a prefix list of the caller's.
func (s *State) checkPeer(caller string, g *SecurityGroupState, id string) error {
	if IsPrefixList(id) {
		_, err := s.PrefixList(caller, id)
		return err
	}
	if peer, ok := s.SecurityGroupByID(caller, id); !ok || peer.VPC != g.VPC {
		return &NotFoundError{"GroupId", id}
	}
	return nil
}
