package cloudwatch

import (
	"testing"
	"time"
)

func TestStatisticsMatchDimensionsExactlyAndMergePeriods(t *testing.T) {
	h := NewHistory(time.Hour)
	t0 := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	ep := []Dimension{{"VPC Endpoint Id", "vpce-1"}, {"Endpoint Type", "Interface"}}
	sub := append([]Dimension{{"Subnet Id", "subnet-1"}}, ep...)
	m := Metric{Namespace: NamespaceEndpoints, Name: "NewConnections", Unit: "Count", Owner: "111"}
	for i, v := range []float64{3, 4, 5} { // 14:00:10, 14:00:20, 14:01:10
		at := t0.Add(time.Duration(10+i*10) * time.Second)
		if i == 2 {
			at = t0.Add(70 * time.Second)
		}
		m.Dimensions = ep
		h.Put(at, m, v)
		m.Dimensions = sub
		h.Put(at, m, 1)
	}
	got, err := h.Statistics("111", NamespaceEndpoints, "NewConnections", ep, t0, t0.Add(5*time.Minute), time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("%v %v", got, err)
	}
	if got[0].Sum != 7 || got[0].SampleCount != 2 || got[0].Max != 4 || got[0].Min != 3 || got[1].Sum != 5 || !got[1].Timestamp.Equal(t0.Add(time.Minute)) {
		t.Fatalf("one-minute datapoints: %+v", got)
	}
	got, _ = h.Statistics("111", NamespaceEndpoints, "NewConnections", ep, t0, t0.Add(5*time.Minute), 5*time.Minute)
	if len(got) != 1 || got[0].Sum != 12 || got[0].Unit != "Count" {
		t.Fatalf("a five-minute period: %+v", got)
	}
	// A subset of the dimensions is another metric, as in CloudWatch.
	if got, _ := h.Statistics("111", NamespaceEndpoints, "NewConnections", ep[:1], t0, t0.Add(5*time.Minute), time.Minute); len(got) != 0 {
		t.Fatalf("fewer dimensions matched: %+v", got)
	}
	// Another account sees nothing.
	if got, _ := h.Statistics("222", NamespaceEndpoints, "NewConnections", ep, t0, t0.Add(5*time.Minute), time.Minute); len(got) != 0 {
		t.Fatalf("another account read the metric: %+v", got)
	}
	if l := h.List("111", NamespaceEndpoints, "", []DimensionFilter{{Name: "Subnet Id"}}, time.Time{}); len(l) != 1 || len(l[0].Dimensions) != 3 {
		t.Fatalf("list by a dimension name: %+v", l)
	}
	if l := h.List("222", "", "", nil, time.Time{}); len(l) != 0 {
		t.Fatalf("another account listed: %+v", l)
	}
	if _, err := h.Statistics("111", NamespaceEndpoints, "NewConnections", ep, t0, t0.Add(time.Hour), 90*time.Second); err == nil {
		t.Fatal("a 90 s period was taken")
	}
	// Past the retention, datapoints are forgotten.
	h.Put(t0.Add(3*time.Hour), Metric{Namespace: NamespaceEndpoints, Name: "Other", Owner: "111"}, 1)
	if got, _ := h.Statistics("111", NamespaceEndpoints, "NewConnections", ep, t0, t0.Add(5*time.Minute), time.Minute); len(got) != 0 {
		t.Fatalf("kept past the retention: %+v", got)
	}
}
