package ctl

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl/cloudwatch"
	"pvlink.dev/pvlink/snapshot"
)

func TestReadingsFallOnEveryTenSecondsOfTheClock(t *testing.T) {
	for _, c := range []struct{ now, want string }{
		{"10:51:50.000", "10:52:00"}, {"10:51:53.400", "10:52:00"}, {"10:51:59.999", "10:52:00"}, {"10:52:00.000", "10:52:10"},
	} {
		now, _ := time.Parse("15:04:05.000", c.now)
		if got := nextSample(now).Format("15:04:05"); got != c.want {
			t.Errorf("after %s: next reading at %s, want %s", c.now, got, c.want)
		}
	}
}

// A reading just past a minute's first instant, of connections made in
// the minute before, puts them in that minute: the minute they were made.
func TestGrowthReadLateIsPutInTheMinuteOfItsInterval(t *testing.T) {
	var conns atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]snapshot.ENICounters{{ENI: "eni-1", EndpointID: "vpce-1", ServiceName: "svc", VPCID: "vpc-1", SubnetID: "subnet-1", NewConnections: conns.Load()}})
	}))
	defer srv.Close()
	report := &Report{
		Region:     "us-east-1",
		Endpoints:  []EndpointState{{ID: "vpce-1", OwnerID: "111122223333"}},
		Forwarders: []ForwarderReport{{ForwarderState: ForwarderState{AZ: "az1"}, Alive: true, Metrics: srv.URL + "/metrics"}},
	}
	s := newSampler(func() *Report { return report }, slog.New(slog.NewTextHandler(io.Discard, nil)))

	minute := time.Date(2026, 11, 28, 10, 51, 0, 0, time.UTC)
	s.sample(minute.Add(40 * time.Second)) // the baseline
	conns.Store(2)
	s.sample(minute.Add(50 * time.Second))
	conns.Store(7) // five more before 10:52, read 100 ms after it
	s.sample(minute.Add(time.Minute + 100*time.Millisecond))
	conns.Store(8) // one more, in 10:52
	s.sample(minute.Add(time.Minute + 10*time.Second))

	dims := []cloudwatch.Dimension{{Name: "Endpoint Type", Value: "Interface"}, {Name: "Service Name", Value: "svc"}, {Name: "VPC Endpoint Id", Value: "vpce-1"}, {Name: "VPC Id", Value: "vpc-1"}}
	points, err := s.hist.Statistics("111122223333", cloudwatch.NamespaceEndpoints, "NewConnections", dims, minute, minute.Add(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, p := range points {
		got[p.Timestamp.Format("15:04")] = p.Sum
	}
	if len(got) != 2 || got["10:51"] != 7 || got["10:52"] != 1 {
		t.Fatalf("NewConnections by minute: %v, want 10:51: 7, 10:52: 1", got)
	}
}
