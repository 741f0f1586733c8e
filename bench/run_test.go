package bench

import "testing"

func TestParseCoreTimesSplitsBusyIdleAndStolen(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  1000 10 500 8000 90 20 180 200 300 0\ncpu0 500 5 250 4000 45 10 90 100 150 0\nintr 1\n"
	got := parseCoreTimes(stat)
	want := coreTimes{busy: 17.1, idle: 80.9, total: 100}
	const eps = 1e-9
	if d := got.busy - want.busy; d > eps || d < -eps {
		t.Errorf("busy %v s, want %v", got.busy, want.busy)
	}
	if d := got.idle - want.idle; d > eps || d < -eps {
		t.Errorf("idle %v s, want %v", got.idle, want.idle)
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
