// Package cloudwatch keeps the fabric's CloudWatch metrics: datapoints at
// one-minute resolution, with AWS's namespaces, names and dimensions, for
// a bounded time, and answers the questions CloudWatch's API asks of them
// (which metrics exist, a metric's statistics over periods). It knows
// nothing of where the numbers come from; ctld feeds it.
package cloudwatch

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// The namespaces pvlink publishes.
const (
	NamespaceEndpoints = "AWS/PrivateLinkEndpoints"
	NamespaceServices  = "AWS/PrivateLinkServices"
	// NamespaceNLB holds the load balancers' host counts
	// (HealthyHostCount, UnHealthyHostCount).
	NamespaceNLB = "AWS/NetworkELB"
)

// Resolution is the finest period kept: one minute, as PrivateLink
// publishes.
const Resolution = time.Minute

// Dimension is a name and value pair of a metric's identity.
type Dimension struct {
	Name, Value string
}

// Stats is a statistic set: what CloudWatch keeps of the values published
// for one metric in one period.
type Stats struct {
	SampleCount, Sum, Min, Max float64
}

func (s *Stats) add(v float64) {
	if s.SampleCount == 0 {
		s.Min, s.Max = v, v
	}
	s.SampleCount++
	s.Sum += v
	s.Min = math.Min(s.Min, v)
	s.Max = math.Max(s.Max, v)
}

func (s *Stats) merge(o Stats) {
	if o.SampleCount == 0 {
		return
	}
	if s.SampleCount == 0 {
		*s = o
		return
	}
	s.SampleCount += o.SampleCount
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
}

// Average is Sum / SampleCount.
func (s Stats) Average() float64 {
	if s.SampleCount == 0 {
		return 0
	}
	return s.Sum / s.SampleCount
}

// Statistic gives one of CloudWatch's statistics by name.
func (s Stats) Statistic(name string) (float64, error) {
	switch name {
	case "SampleCount":
		return s.SampleCount, nil
	case "Sum":
		return s.Sum, nil
	case "Minimum":
		return s.Min, nil
	case "Maximum":
		return s.Max, nil
	case "Average":
		return s.Average(), nil
	}
	return 0, fmt.Errorf("statistic %q: use SampleCount, Sum, Minimum, Maximum or Average", name)
}

// Metric is a metric's identity, and the account that may read it (the
// endpoint's owner for AWS/PrivateLinkEndpoints, the service's owner for
// AWS/PrivateLinkServices).
type Metric struct {
	Namespace  string
	Name       string
	Dimensions []Dimension // sorted by name
	Unit       string
	Owner      string
}

func (m *Metric) key() string {
	var b strings.Builder
	b.WriteString(m.Owner + "\x00" + m.Namespace + "\x00" + m.Name)
	for _, d := range m.Dimensions {
		b.WriteString("\x00" + d.Name + "=" + d.Value)
	}
	return b.String()
}

type series struct {
	Metric
	minutes map[int64]*Stats // by the minute's Unix time
}

// History holds every metric's one-minute statistic sets for Retention.
type History struct {
	Retention time.Duration

	mu      sync.Mutex
	series  map[string]*series
	pruned  int64 // the minute of the last prune
	samples uint64
}

// NewHistory keeps retention of datapoints (at least one hour).
func NewHistory(retention time.Duration) *History {
	return &History{Retention: max(retention, time.Hour), series: map[string]*series{}}
}

// Put publishes one value of a metric at t.
func (h *History) Put(t time.Time, m Metric, v float64) {
	m.Dimensions = sortedDims(m.Dimensions)
	minute := t.Truncate(Resolution).Unix()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples++
	k := m.key()
	s := h.series[k]
	if s == nil {
		s = &series{Metric: m, minutes: map[int64]*Stats{}}
		h.series[k] = s
	}
	st := s.minutes[minute]
	if st == nil {
		st = &Stats{}
		s.minutes[minute] = st
	}
	st.add(v)
	if minute != h.pruned {
		h.pruned = minute
		h.prune(minute - int64(h.Retention/time.Second))
	}
}

// prune forgets minutes before oldest, and series left empty.
func (h *History) prune(oldest int64) {
	for k, s := range h.series {
		for m := range s.minutes {
			if m < oldest {
				delete(s.minutes, m)
			}
		}
		if len(s.minutes) == 0 {
			delete(h.series, k)
		}
	}
}

// Samples counts the values published so far.
func (h *History) Samples() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.samples
}

// DimensionFilter selects metrics with a dimension of Name (and of Value,
// when it is set).
type DimensionFilter struct {
	Name, Value string
}

// List gives the metrics owner may read, in namespace (all if empty), of
// name (all if empty), that have every dimension filters ask for, with a
// datapoint since the given time; sorted for stable paging.
func (h *History) List(owner, namespace, name string, filters []DimensionFilter, since time.Time) []Metric {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Metric
	for _, s := range h.series {
		if s.Owner != owner || namespace != "" && s.Namespace != namespace || name != "" && s.Name != name {
			continue
		}
		if !matches(s.Dimensions, filters) || !s.activeSince(since.Unix()) {
			continue
		}
		out = append(out, s.Metric)
	}
	slices.SortFunc(out, func(a, b Metric) int {
		return cmp.Compare(a.key(), b.key())
	})
	return out
}

func (s *series) activeSince(t int64) bool {
	for m := range s.minutes {
		if m+60 > t {
			return true
		}
	}
	return false
}

func matches(dims []Dimension, filters []DimensionFilter) bool {
	for _, f := range filters {
		if !slices.ContainsFunc(dims, func(d Dimension) bool {
			return d.Name == f.Name && (f.Value == "" || d.Value == f.Value)
		}) {
			return false
		}
	}
	return true
}

// Datapoint is a metric's statistic set over one period.
type Datapoint struct {
	Timestamp time.Time
	Stats
	Unit string
}

// Statistics gives the datapoints of the metric with exactly these
// dimensions (as CloudWatch matches them) whose periods start in
// [start, end), oldest first. A period is a multiple of a minute; periods
// are aligned to multiples of themselves since the Unix epoch.
func (h *History) Statistics(owner, namespace, name string, dims []Dimension, start, end time.Time, period time.Duration) ([]Datapoint, error) {
	if period < Resolution || period%Resolution != 0 {
		return nil, fmt.Errorf("period %v: use a multiple of 60 seconds", period)
	}
	if !end.After(start) {
		return nil, fmt.Errorf("the start time %s is not before the end time %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	m := Metric{Namespace: namespace, Name: name, Dimensions: sortedDims(dims), Owner: owner}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[m.key()]
	if s == nil {
		return nil, nil
	}
	p := int64(period / time.Second)
	buckets := map[int64]*Stats{}
	for minute, st := range s.minutes {
		b := minute - minute%p
		if b < start.Unix()-start.Unix()%p || minute >= end.Unix() || minute < start.Unix()-start.Unix()%60 {
			continue
		}
		if buckets[b] == nil {
			buckets[b] = &Stats{}
		}
		buckets[b].merge(*st)
	}
	out := make([]Datapoint, 0, len(buckets))
	for b, st := range buckets {
		out = append(out, Datapoint{Timestamp: time.Unix(b, 0).UTC(), Stats: *st, Unit: s.Unit})
	}
	slices.SortFunc(out, func(a, b Datapoint) int { return a.Timestamp.Compare(b.Timestamp) })
	return out, nil
}

func sortedDims(d []Dimension) []Dimension {
	out := slices.Clone(d)
	slices.SortFunc(out, func(a, b Dimension) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
