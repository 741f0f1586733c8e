package ctl

import (
	"slices"
	"time"
)

// Faults: outages made on purpose, as AWS Fault Injection Service makes
// them for PrivateLink. An AZ down black-holes its ENIs and its targets:
// their packets vanish (no RST, no ICMP); DNS leaves the AZ out of the
// endpoints' regional names. Each is recorded in the model, so status,
// metrics and DNS show it, and lifted exactly.

// FaultState is one fault in force.
type FaultState struct {
	Kind  string    `json:"kind"` // az-down
	AZ    string    `json:"az"`
	Since time.Time `json:"since"`
}

// AZDown takes an AZ down.
func (s *State) AZDown(az string, now time.Time) error {
	if !slices.Contains(s.AvailabilityZones, az) {
		return refuse("no AZ %s in fabric %s (its AZs: %v)", az, s.Name, s.AvailabilityZones)
	}
	if s.IsAZDown(az) {
		return refuse("AZ %s is already down (since %s)", az, s.faultSince(az).Format(time.RFC3339))
	}
	s.Faults = append(s.Faults, FaultState{Kind: "az-down", AZ: az, Since: now.UTC()})
	return nil
}

// AZUp ends an AZ's outage.
func (s *State) AZUp(az string) error {
	i := slices.IndexFunc(s.Faults, func(f FaultState) bool { return f.Kind == "az-down" && f.AZ == az })
	if i < 0 {
		return refuse("AZ %s is not down", az)
	}
	s.Faults = slices.Delete(s.Faults, i, i+1)
	return nil
}

// IsAZDown reports whether an AZ is down by a fault.
func (s *State) IsAZDown(az string) bool {
	return slices.ContainsFunc(s.Faults, func(f FaultState) bool { return f.Kind == "az-down" && f.AZ == az })
}

func (s *State) faultSince(az string) time.Time {
	for _, f := range s.Faults {
		if f.AZ == az {
			return f.Since
		}
	}
	return time.Time{}
}
