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

// FaultState is one fault in force: an AZ down, or a Region down (all
// its AZs).
type FaultState struct {
	Kind   string    `json:"kind"` // az-down or region-down
	AZ     string    `json:"az,omitempty"`
	Region string    `json:"region,omitempty"`
	Since  time.Time `json:"since"`
}

// AZDown takes an AZ down.
func (s *State) AZDown(az string, now time.Time) error {
	if !slices.Contains(s.AvailabilityZones, az) {
		return refuse("no AZ %s in fabric %s (its AZs: %v)", az, s.Name, s.AvailabilityZones)
	}
	if s.IsAZDown(az) {
		return refuse("AZ %s is already down (by a fault on it or on its Region)", az)
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

// IsAZDown reports whether an AZ is down by a fault, its own or its
// Region's.
func (s *State) IsAZDown(az string) bool {
	return slices.ContainsFunc(s.Faults, func(f FaultState) bool {
		return f.Kind == "az-down" && f.AZ == az || f.Kind == "region-down" && slices.Contains(s.RegionAZs(f.Region), az)
	})
}

// RegionDown takes every AZ of a Region down.
func (s *State) RegionDown(region string, now time.Time) error {
	if !s.HasRegion(region) {
		return refuse("no Region %s in fabric %s (its Regions: %v)", region, s.Name, s.RegionNames())
	}
	if slices.ContainsFunc(s.Faults, func(f FaultState) bool { return f.Kind == "region-down" && f.Region == region }) {
		return refuse("Region %s is already down", region)
	}
	s.Faults = append(s.Faults, FaultState{Kind: "region-down", Region: region, Since: now.UTC()})
	return nil
}

// RegionUp ends a Region's outage (AZ faults of its own stay).
func (s *State) RegionUp(region string) error {
	i := slices.IndexFunc(s.Faults, func(f FaultState) bool { return f.Kind == "region-down" && f.Region == region })
	if i < 0 {
		return refuse("Region %s is not down", region)
	}
	s.Faults = slices.Delete(s.Faults, i, i+1)
	return nil
}
