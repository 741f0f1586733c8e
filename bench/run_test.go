package bench

import (
	"strings"
	"testing"
)

func TestParseCoreTimesSplitsBusyIdleAndStolen(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  1000 10 500 8000 90 20 180 200 300 0\ncpu0 500 5 250 4000 45 10 90 100 150 0\nintr 1\n"
	got := parseCoreTimes(stat)
	want := coreTimes{busy: 17.1, idle: 80.9, steal: 2, total: 100}
	const eps = 1e-9
	if d := got.busy - want.busy; d > eps || d < -eps {
		t.Errorf("busy %v s, want %v", got.busy, want.busy)
	}
	if d := got.idle - want.idle; d > eps || d < -eps {
		t.Errorf("idle %v s, want %v", got.idle, want.idle)
	}
	if d := got.steal - want.steal; d > eps || d < -eps {
		t.Errorf("steal %v s, want %v", got.steal, want.steal)
	}
	if d := got.total - want.total; d > eps || d < -eps {
		t.Errorf("total %v s, want %v", got.total, want.total)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 x 4 5 6 7 8\n", "cpu 1 2 3\n"} {
		if c := parseCoreTimes(bad); c != (coreTimes{}) {
			t.Errorf("parseCoreTimes(%q) = %+v, want zero", bad, c)
		}
	}
	if d := readCoreTimes(); d.total <= 0 || d.busy < 0 || d.idle < 0 {
		t.Errorf("this machine's /proc/stat gave %+v", d)
	}
}

func TestStealNoteSaysWhenTheHostTookTheCores(t *testing.T) {
	r := &Report{Results: []Result{
		{Path: "pvlink", Metric: "steal_pct", Median: 1, Min: 0.5, Max: 2},
		{Path: "haproxy", Metric: "steal_pct", Median: 3, Min: 1, Max: 4.9},
		{Path: "haproxy", Metric: "conns_per_s", Median: 9000, Min: 8000, Max: 10000},
	}}
	if n := stealNote(r); n != "" {
		t.Errorf("steal of at most 4.9%% gave a note: %q", n)
	}
	r.Results[0].Max = 41.4
	n := stealNote(r)
	if !strings.Contains(n, "up to 41%") || !strings.Contains(n, "(pvlink;") {
		t.Errorf("steal of 41.4%% on pvlink's path gave %q", n)
	}
	var md strings.Builder
	r.Results = append(r.Results, Result{Path: "pvlink", Metric: "conns_per_s", Median: 7000, Min: 7000, Max: 7000})
	r.Notes = []string{n}
	r.WriteMarkdown(&md)
	for _, line := range strings.Split(md.String(), "\n") {
		if strings.HasPrefix(line, "| cores taken by the hypervisor") && strings.Contains(line, "x |") {
			t.Errorf("the steal row has a ratio: %s", line)
		}
		if strings.HasPrefix(line, "| new connections") && !strings.Contains(line, "0.78x |") {
			t.Errorf("the connections row lost its ratio: %s", line)
		}
	}
	if !strings.Contains(md.String(), n) {
		t.Errorf("the table does not carry the note:\n%s", md.String())
	}
}
