package ctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// Reading the forwarders' own JSON documents (/counters, /flows, /targets,
// /stats), which their metrics port serves.

// ForwarderJSON reads one of a forwarder process's JSON documents (/stats,
// /flows, /targets, /counters) into v.
func ForwarderJSON(f ForwarderReport, path string, v any) error {
	if f.Metrics == "" {
		return fmt.Errorf("forwarder %s is not running", f.Label())
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(f.MetricsBase() + path)
	if err != nil {
		return fmt.Errorf("forwarder %s: %w", f.Label(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("forwarder %s %s: %s", f.Label(), path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("forwarder %s %s: %w", f.Label(), path, err)
	}
	return nil
}

// ForwarderDoc is one forwarder process's answer.
type ForwarderDoc[T any] struct {
	ForwarderReport
	Doc T
}

// ReadForwarders reads one JSON document from every forwarder process of a
// fabric (every worker of every AZ), in the status's order; a forwarder
// that is not running is an error that names its log.
func ReadForwarders[T any](r *Report, path string) ([]ForwarderDoc[T], error) {
	var out []ForwarderDoc[T]
	for _, f := range r.Forwarders {
		if !f.Alive || f.Metrics == "" {
			return nil, fmt.Errorf("forwarder %s is not running (its log: %s)", f.Label(), f.Log)
		}
		var v T
		if err := ForwarderJSON(f, path, &v); err != nil {
			return nil, err
		}
		out = append(out, ForwarderDoc[T]{f, v})
	}
	return out, nil
}

// ENIMetrics are an ENI's counters in its AZ.
type ENIMetrics struct {
	AZ string `json:"az"`
	snapshot.ENICounters
}

// SumENICounters gives each ENI's counters summed over its AZ's workers, in
// the order the forwarders first list them.
func SumENICounters(docs []ForwarderDoc[[]snapshot.ENICounters]) []ENIMetrics {
	var rows []ENIMetrics
	at := map[string]int{}
	for _, d := range docs {
		for _, c := range d.Doc {
			if i, ok := at[d.AZ+"/"+c.ENI]; ok {
				rows[i].ENICounters.Add(c)
				continue
			}
			at[d.AZ+"/"+c.ENI] = len(rows)
			rows = append(rows, ENIMetrics{d.AZ, c})
		}
	}
	return rows
}
