package ctl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl/store"
)

// How the model lies in the store: one record per resource, so that a
// change rewrites only what it touched and a watcher sees which resources
// changed. Keys are kind/name.
const (
	keyFabric    = "fabric"
	prefixVPC    = "vpc/"
	prefixLB     = "lb/"
	prefixTG     = "tg/"
	prefixSvc    = "service/"
	prefixEP     = "endpoint/"
	prefixTarget = "target/"
	prefixTopic  = "topic/"
	prefixNotify = "notification/"
	prefixTags   = "tags/"
	prefixSG     = "sg/"
	prefixPL     = "prefixlist/"
	prefixZone   = "zone/"
	prefixFlow   = "flowlog/"
	prefixRule   = "insightrule/"
	prefixFault  = "fault/"
	// prefixHost holds what the realizer made on the host (not the model):
	// written before it is made, so nothing it creates is ever unrecorded.
	keyHostNamespaces = "host/namespaces"
)

// fabricRecord is the model's own settings.
type fabricRecord struct {
	Name         string      `json:"name"`
	File         string      `json:"file,omitempty"`
	Version      uint64      `json:"version"`
	Region       string      `json:"region"`
	Workers      int         `json:"forwarder_workers,omitempty"`
	FlowCapacity int         `json:"flow_capacity,omitempty"`
	Created      string      `json:"created"`
	Accounts     []Account   `json:"accounts"`
	Zones        []string    `json:"availability_zones"`
	API          APISettings `json:"api"`
}

// collection is one kind of resource in the store: its key prefix, how it
// adds its records (key and value) to a save, and how a load takes one
// back. The one list of them (collections) is what saveModel writes and
// clears and what loadModel reads: a kind cannot be saved without being
// cleared or read.
type collection struct {
	prefix string
	save   func(s *State, add func(key string, v any))
	load   func(s *State, key string, data []byte) error
}

// listOf is a collection kept as a list in the model, each record keyed
// by its place and name (order keeps the list's order).
func listOf[T any](prefix string, list func(*State) *[]T, name func(*T) string) collection {
	return collection{
		prefix: prefix,
		save: func(s *State, add func(string, any)) {
			for i := range *list(s) {
				v := &(*list(s))[i]
				add(prefix+order(i)+name(v), *v)
			}
		},
		load: func(s *State, _ string, data []byte) error { return appendJSON(data, list(s)) },
	}
}

var collections = []collection{
	listOf(prefixVPC, func(s *State) *[]VPCState { return &s.VPCs }, func(v *VPCState) string { return v.Name }),
	listOf(prefixLB, func(s *State) *[]LBState { return &s.LoadBalancers }, func(v *LBState) string { return v.Name }),
	listOf(prefixTG, func(s *State) *[]TargetGroupState { return &s.TargetGroups }, func(v *TargetGroupState) string { return v.Name }),
	listOf(prefixSvc, func(s *State) *[]ServiceState { return &s.Services }, func(v *ServiceState) string { return v.Name }),
	listOf(prefixEP, func(s *State) *[]EndpointState { return &s.Endpoints }, func(v *EndpointState) string { return v.ID }),
	listOf(prefixTarget, func(s *State) *[]TargetState { return &s.Targets }, func(v *TargetState) string {
		return v.TargetGroup + "/" + v.IP + ":" + strconv.Itoa(v.Port)
	}),
	listOf(prefixSG, func(s *State) *[]SecurityGroupState { return &s.SecurityGroups }, func(v *SecurityGroupState) string { return v.ID }),
	listOf(prefixPL, func(s *State) *[]PrefixListState { return &s.PrefixLists }, func(v *PrefixListState) string { return v.ID }),
	listOf(prefixZone, func(s *State) *[]PublicZoneState { return &s.PublicZones }, func(v *PublicZoneState) string { return v.Name }),
	listOf(prefixTopic, func(s *State) *[]TopicState { return &s.Topics }, func(v *TopicState) string { return v.ARN }),
	listOf(prefixNotify, func(s *State) *[]NotificationState { return &s.Notifications }, func(v *NotificationState) string { return v.ID }),
	listOf(prefixFlow, func(s *State) *[]FlowLogState { return &s.FlowLogs }, func(v *FlowLogState) string { return v.ID }),
	listOf(prefixRule, func(s *State) *[]InsightRuleState { return &s.InsightRules }, func(v *InsightRuleState) string { return v.Name }),
	listOf(prefixFault, func(s *State) *[]FaultState { return &s.Faults }, func(v *FaultState) string { return v.Kind + "/" + v.AZ + v.Region }),
	{
		// Tags, by resource id; a resource without tags has no record.
		prefix: prefixTags,
		save: func(s *State, add func(string, any)) {
			for id, tags := range s.Tags {
				if len(tags) > 0 {
					add(prefixTags+id, tags)
				}
			}
		},
		load: func(s *State, key string, data []byte) error {
			var tags []Tag
			if err := json.Unmarshal(data, &tags); err != nil {
				return err
			}
			if s.Tags == nil {
				s.Tags = map[string][]Tag{}
			}
			s.Tags[strings.TrimPrefix(key, prefixTags)] = tags
			return nil
		},
	},
}

func (s *State) records() (map[string]any, error) {
	r := map[string]any{
		keyFabric: fabricRecord{Name: s.Name, File: s.File, Version: s.Version, Region: s.Region, Workers: s.Workers, FlowCapacity: s.FlowCapacity, Created: s.Created.Format(time.RFC3339Nano), Accounts: s.Accounts, Zones: s.AvailabilityZones, API: s.API},
	}
	var dup error
	add := func(key string, v any) {
		if _, ok := r[key]; ok && dup == nil {
			dup = fmt.Errorf("two resources are stored as %s", key)
		}
		r[key] = v
	}
	for _, c := range collections {
		c.save(s, add)
	}
	if dup != nil {
		return nil, dup
	}
	return r, nil
}

// order keeps the model's order in key order: the status lists resources
// as the topology does.
func order(i int) string { return fmt.Sprintf("%05d-", i) }

// saveModel writes the model's records in tx and deletes those it no longer
// has.
func saveModel(tx store.Tx, s *State) error {
	recs, err := s.records()
	if err != nil {
		return err
	}
	var stale []string
	for _, c := range collections {
		tx.List(c.prefix, func(k string, _ []byte) error {
			if _, ok := recs[k]; !ok {
				stale = append(stale, k)
			}
			return nil
		})
	}
	for _, k := range stale {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		data, err := json.Marshal(recs[k])
		if err != nil {
			return err
		}
		if err := tx.Put(k, data); err != nil {
			return err
		}
	}
	return nil
}

// loadModel reads the model; ok is false when the store holds none.
func loadModel(tx store.ReadTx) (*State, bool, error) {
	data, ok := tx.Get(keyFabric)
	if !ok {
		return &State{}, false, nil
	}
	var f fabricRecord
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, false, fmt.Errorf("store record %s: %w", keyFabric, err)
	}
	s := &State{Name: f.Name, File: f.File, Version: f.Version, Region: f.Region, Workers: f.Workers, FlowCapacity: f.FlowCapacity, Accounts: f.Accounts, AvailabilityZones: f.Zones, API: f.API}
	s.Created, _ = parseTime(f.Created)
	for _, c := range collections {
		err := tx.List(c.prefix, func(k string, v []byte) error {
			if err := c.load(s, k, v); err != nil {
				return fmt.Errorf("store record %s: %w", k, err)
			}
			return nil
		})
		if err != nil {
			return s, true, err
		}
	}
	return s, true, nil
}

func appendJSON[T any](b []byte, to *[]T) error {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*to = append(*to, v)
	return nil
}
