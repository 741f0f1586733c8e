package ctl

import (
	"slices"
	"strconv"
	"strings"
)

// AZs have ids (use1-az1), which the topology, the forwarders and pvlink's
// own commands use, and names (us-east-1a), which the AWS API and zonal DNS
// names show.

// ZoneName is the name AWS shows for the AZ whose id is id, in region:
// the id's number as a letter after the Region (use1-az1 in us-east-1 is
// us-east-1a, usw2-az2 in us-west-2 is us-west-2b). AWS maps names to ids
// anew for each account; pvlink maps them alike for all. An id that does
// not end in -az1 to -az26 is its own name.
func ZoneName(region, id string) string {
	i := strings.LastIndex(id, "-az")
	if i < 0 {
		return id
	}
	n, err := strconv.Atoi(id[i+3:])
	if err != nil || n < 1 || n > 26 || strconv.Itoa(n) != id[i+3:] {
		return id
	}
	return region + string(rune('a'+n-1))
}

// AZRegion is the Region of the fabric's AZ id: the one that lists it, or
// the home Region.
func (s *State) AZRegion(id string) string {
	for _, r := range s.Regions {
		if slices.Contains(r.AZs, id) {
			return r.Name
		}
	}
	return s.Region
}

// AZName is the name of the fabric's AZ id, in its Region (ZoneName).
func (s *State) AZName(id string) string { return ZoneName(s.AZRegion(id), id) }

// AZID is the id of the AZ of Region r that is named, or has the id,
// nameOrID; "" if r has none.
func (s *State) AZID(r, nameOrID string) string {
	for _, az := range s.RegionAZs(r) {
		if az == nameOrID || ZoneName(r, az) == nameOrID {
			return az
		}
	}
	return ""
}
