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

func (s *State) records() (map[string]any, error) {
	r := map[string]any{
		keyFabric: fabricRecord{Name: s.Name, File: s.File, Version: s.Version, Region: s.Region, Workers: s.Workers, FlowCapacity: s.FlowCapacity, Created: s.Created.Format(time.RFC3339Nano), Accounts: s.Accounts, Zones: s.AvailabilityZones, API: s.API},
	}
	add := func(key string, v any) error {
		if _, dup := r[key]; dup {
			return fmt.Errorf("two resources are stored as %s", key)
		}
		r[key] = v
		return nil
	}
	var errs []error
	for i, v := range s.VPCs {
		errs = append(errs, add(prefixVPC+order(i)+v.Name, v))
	}
	for i, lb := range s.LoadBalancers {
		errs = append(errs, add(prefixLB+order(i)+lb.Name, lb))
	}
	for i, tg := range s.TargetGroups {
		errs = append(errs, add(prefixTG+order(i)+tg.Name, tg))
	}
	for i, sv := range s.Services {
		errs = append(errs, add(prefixSvc+order(i)+sv.Name, sv))
	}
	for i, e := range s.Endpoints {
		errs = append(errs, add(prefixEP+order(i)+e.ID, e))
	}
	for i, t := range s.Targets {
		errs = append(errs, add(prefixTarget+order(i)+t.TargetGroup+"/"+t.IP+":"+strconv.Itoa(t.Port), t))
	}
	for i, g := range s.SecurityGroups {
		errs = append(errs, add(prefixSG+order(i)+g.ID, g))
	}
	for i, z := range s.PublicZones {
		errs = append(errs, add(prefixZone+order(i)+z.Name, z))
	}
	for i, t := range s.Topics {
		errs = append(errs, add(prefixTopic+order(i)+t.ARN, t))
	}
	for i, n := range s.Notifications {
		errs = append(errs, add(prefixNotify+order(i)+n.ID, n))
	}
	for i, f := range s.FlowLogs {
		errs = append(errs, add(prefixFlow+order(i)+f.ID, f))
	}
	for i, r := range s.InsightRules {
		errs = append(errs, add(prefixRule+order(i)+r.Name, r))
	}
	for i, f := range s.Faults {
		errs = append(errs, add(prefixFault+order(i)+f.Kind+"/"+f.AZ+f.Region, f))
	}
	for id, tags := range s.Tags {
		if len(tags) > 0 {
			errs = append(errs, add(prefixTags+id, tags))
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
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
	for _, prefix := range []string{prefixVPC, prefixLB, prefixTG, prefixSvc, prefixEP, prefixTarget, prefixTopic, prefixNotify, prefixTags, prefixSG, prefixZone, prefixFlow, prefixRule, prefixFault} {
		tx.List(prefix, func(k string, _ []byte) error {
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
	each := func(prefix string, fn func([]byte) error) error {
		return tx.List(prefix, func(k string, v []byte) error {
			if err := fn(v); err != nil {
				return fmt.Errorf("store record %s: %w", k, err)
			}
			return nil
		})
	}
	err := firstErr(
		each(prefixVPC, func(b []byte) error { return appendJSON(b, &s.VPCs) }),
		each(prefixLB, func(b []byte) error { return appendJSON(b, &s.LoadBalancers) }),
		each(prefixTG, func(b []byte) error { return appendJSON(b, &s.TargetGroups) }),
		each(prefixSvc, func(b []byte) error { return appendJSON(b, &s.Services) }),
		each(prefixEP, func(b []byte) error { return appendJSON(b, &s.Endpoints) }),
		each(prefixTarget, func(b []byte) error { return appendJSON(b, &s.Targets) }),
		each(prefixSG, func(b []byte) error { return appendJSON(b, &s.SecurityGroups) }),
		each(prefixZone, func(b []byte) error { return appendJSON(b, &s.PublicZones) }),
		each(prefixTopic, func(b []byte) error { return appendJSON(b, &s.Topics) }),
		each(prefixNotify, func(b []byte) error { return appendJSON(b, &s.Notifications) }),
		each(prefixFlow, func(b []byte) error { return appendJSON(b, &s.FlowLogs) }),
		each(prefixRule, func(b []byte) error { return appendJSON(b, &s.InsightRules) }),
		each(prefixFault, func(b []byte) error { return appendJSON(b, &s.Faults) }),
		tx.List(prefixTags, func(k string, v []byte) error {
			var tags []Tag
			if err := json.Unmarshal(v, &tags); err != nil {
				return fmt.Errorf("store record %s: %w", k, err)
			}
			if s.Tags == nil {
				s.Tags = map[string][]Tag{}
			}
			s.Tags[strings.TrimPrefix(k, prefixTags)] = tags
			return nil
		}),
	)
	return s, true, err
}

func appendJSON[T any](b []byte, to *[]T) error {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*to = append(*to, v)
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
