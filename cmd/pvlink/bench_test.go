package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/bench"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// TestBenchRefusesABadOptionBeforeBuildingAnything: an unknown path or
// measurement is an error that names the valid ones, given before any
// namespace is built.
func TestBenchRefusesABadOptionBeforeBuildingAnything(t *testing.T) {
	fabrictest.RequireRoot(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--paths", "pvlink,nope"}, `unknown path "nope" (paths: pvlink, kernel-routed, kernel-dnat, haproxy)`},
		{[]string{"--measure", "latency,speed"}, `unknown measurement "speed" (measurements: upload, download, bidirectional, conns, latency)`},
	} {
		out, err := exec.Command(fabrictest.Binary(t), append([]string{"bench"}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("bench %v: %v, %s; want an error saying %s", c.args, err, out, c.want)
		}
		if strings.Contains(string(out), "building") || strings.Contains(string(out), "warming") {
			t.Errorf("bench %v built something before refusing: %s", c.args, out)
		}
	}
}

// TestBenchMeasuresOnlyWhatItIsAskedTo runs one short round of the
// connection and latency measurements on the pvlink path: the report holds
// their metrics (and the forwarders' RSS), and none of the others; what a
// connection cost is the forwarders' share of what every core spent. The
// load generator ran with its runtime monitor kept awake, beside the
// GODEBUG settings it was given.
func TestBenchMeasuresOnlyWhatItIsAskedTo(t *testing.T) {
	fabrictest.RequireRoot(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fabrictest.Binary(t), "bench", "--paths", "pvlink", "--measure", "latency,conns",
		"--runs", "1", "--duration", "500ms", "--warmup", "200ms", "--out", dir)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") }), "GODEBUG=madvdontneed=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r bench.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range r.Results {
		sane := x.Median > 0
		if x.Metric == "steal_pct" {
			// A machine no hypervisor shares has none: zero is a figure.
			sane = x.Median >= 0 && x.Max < 100
		}
		if x.Path != "pvlink" || len(x.Runs) != 1 || !sane {
			t.Errorf("result %+v: want one run of the pvlink path with a figure", x)
		}
		got = append(got, x.Metric)
	}
	want := []string{"conns_per_s", "conn_proxy_cpu_us", "conn_machine_cpu_us", "conn_idle_pct",
		"latency_p50_us", "latency_p99_us", "latency_p999_us", "rss_mib", "steal_pct"}
	if !slices.Equal(got, want) {
		t.Errorf("metrics %v, want %v\n%s", got, want, out)
	}
	if p50, _ := r.Get("pvlink", "latency_p50_us"); !strings.Contains(string(out), "latency p50") || p50.Median > 1e5 {
		t.Errorf("p50 %v µs; output:\n%s", p50.Median, out)
	}
	proxy, _ := r.Get("pvlink", "conn_proxy_cpu_us")
	all, _ := r.Get("pvlink", "conn_machine_cpu_us")
	idle, _ := r.Get("pvlink", "conn_idle_pct")
	if proxy.Median <= 0 || proxy.Median >= all.Median || idle.Median < 0 || idle.Median >= 100 {
		t.Errorf("per connection: forwarders %.0f µs of all cores' %.0f µs, %.0f%% idle; output:\n%s", proxy.Median, all.Median, idle.Median, out)
	}
	if want := "madvdontneed=1,schedtrace=2147483647"; r.GODEBUG != want {
		t.Errorf("the load generator ran with GODEBUG %q, want %q", r.GODEBUG, want)
	}
	md, err := os.ReadFile(filepath.Join(dir, "bench.md"))
	if err != nil || !strings.Contains(string(md), "load generator GODEBUG=madvdontneed=1,schedtrace=2147483647.") {
		t.Errorf("bench.md does not name the load generator's GODEBUG (%v):\n%s", err, md)
	}
	// The report says which build it measured, gVisor's changes included.
	if !strings.Contains(r.Build, "with pvlink's changes") || !strings.Contains(string(md), "Measured: "+r.Build+".") {
		t.Errorf("the report's build is %q; bench.md:\n%s", r.Build, md)
	}
}
