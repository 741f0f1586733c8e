package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/buildinfo"
)

// Options are the settings of one `pvlink bench` run.
type Options struct {
	Runs       int           // repetitions of each measurement (median, min-max)
	Duration   time.Duration // of each throughput, connection and latency measurement
	Warmup     time.Duration
	Paths      []string // of AllPaths
	ConnCount  int      // bound on connections per connection-rate measurement
	ConnWorker int      // concurrent connection workers
	LatRate    int      // requests per second of the latency measurement
	Workers    int      // forwarder workers of the pvlink path (0: DefaultWorkers)
	Measure    []string // of Measurements (empty: all)
	// ProfileDir, if set, gets a CPU profile of every forwarder during
	// each of the pvlink path's measurements (RUN-METRIC-LABEL.pprof).
	ProfileDir string
	Log        io.Writer
}

// DefaultWorkers is the pvlink path's forwarder workers: two, as the
// HAProxy path runs two threads (nbthread 2).
const DefaultWorkers = 2

// AllPaths are the data paths compared, pvlink first.
var AllPaths = []string{"pvlink", "kernel-routed", "kernel-dnat", "haproxy"}

// Result is one metric of one path over the runs.
type Result struct {
	Path   string    `json:"path"`
	Metric string    `json:"metric"`
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
}

// Report is everything a run measured.
type Report struct {
	Date    time.Time `json:"date"`
	Machine string    `json:"machine"`
	Command string    `json:"command"`
	// GODEBUG is the load generator's (this process's): pvlink bench
	// runs with its runtime monitor kept awake, as the forwarders do.
	GODEBUG string `json:"godebug,omitempty"`
	// Build is what `pvlink version` says of the binary measured (the
	// forwarders are this same executable): its revision, and whether its
	// gVisor has pvlink's changes (third_party/gvisor), which downloads
	// depend on.
	Build   string `json:"build,omitempty"`
	Options struct {
		Runs     int    `json:"runs"`
		Duration string `json:"duration"`
	} `json:"options"`
	Results []Result `json:"results"`
	Notes   []string `json:"notes,omitempty"`
}

// target is how the load reaches a path's servers.
type target struct {
	dial             Dialer
	sink, rr, source string
	procs            []int // the processes whose CPU and RSS are reported (forwarder workers, haproxy)
	fwds             []ctl.ForwarderReport
}

// Run builds the topologies, measures every path, and tears it all down.
func Run(ctx context.Context, exe string, o Options) (*Report, error) {
	r := &Report{Date: time.Now().UTC(), Machine: machine(), GODEBUG: os.Getenv("GODEBUG"), Build: buildinfo.String()}
	r.Options.Runs, r.Options.Duration = o.Runs, o.Duration.String()
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	// Refuse a bad option before anything is built.
	for _, path := range o.Paths {
		if !slices.Contains(AllPaths, path) {
			return nil, fmt.Errorf("unknown path %q (paths: %s)", path, strings.Join(AllPaths, ", "))
		}
	}
	for _, m := range o.Measure {
		if !slices.Contains(Measurements, m) {
			return nil, fmt.Errorf("unknown measurement %q (measurements: %s)", m, strings.Join(Measurements, ", "))
		}
	}
	prefix := fmt.Sprintf("pvb%d", os.Getpid()%100000)
	targets := map[string]target{}

	needKernel := false
	for _, p := range o.Paths {
		needKernel = needKernel || p != "pvlink"
	}
	if needKernel {
		logf("building the kernel topology (%s-c, -r, -p)", prefix)
		k, err := NewKernel(prefix)
		if err != nil {
			return nil, err
		}
		defer k.Close()
		srv, err := StartServers(k.Provider, providerIP)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		dial := DialFrom(k.Consumer)
		targets["kernel-routed"] = target{dial: dial, sink: net.JoinHostPort(providerIP, strconv.Itoa(SinkPort)), rr: net.JoinHostPort(providerIP, strconv.Itoa(RRPort)), source: net.JoinHostPort(providerIP, strconv.Itoa(SourcePort))}
		targets["kernel-dnat"] = target{dial: dial, sink: net.JoinHostPort(vipIP, "80"), rr: net.JoinHostPort(vipIP, "81"), source: net.JoinHostPort(vipIP, "82")}
		if slices.Contains(o.Paths, "haproxy") {
			if err := k.StartHAProxy(); err != nil {
				return nil, err
			}
			targets["haproxy"] = target{dial: dial, sink: net.JoinHostPort(routerCIP, strconv.Itoa(haproxySink)), rr: net.JoinHostPort(routerCIP, strconv.Itoa(haproxyRR)), source: net.JoinHostPort(routerCIP, strconv.Itoa(haproxySource)), procs: []int{k.HAProxyPID()}}
		}
	}
	if slices.Contains(o.Paths, "pvlink") {
		logf("bringing up the pvlink fabric %s", prefix)
		workers := o.Workers
		if workers <= 0 {
			workers = DefaultWorkers
		}
		s, down, err := upFabric(exe, prefix, strings.Replace(fabricTopology, "WORKERS", strconv.Itoa(workers), 1))
		if err != nil {
			return nil, err
		}
		defer down()
		provider := ctl.NetnsName(prefix, "provider")
		srv, err := StartServers(provider, fabricTarget)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		eni := s.Endpoints[0].ENIs[0]
		targets["pvlink"] = target{
			dial: DialFrom(eni.Netns), sink: net.JoinHostPort(eni.IP, "80"), rr: net.JoinHostPort(eni.IP, "81"), source: net.JoinHostPort(eni.IP, "82"),
		}
		for _, f := range s.Forwarders {
			t := targets["pvlink"]
			t.procs = append(t.procs, f.PID)
			t.fwds = append(t.fwds, f)
			targets["pvlink"] = t
		}
	}

	// Rounds: each run measures every path once, in turn, so that a
	// stretch of a slow or busy machine (a shared VM drifts for minutes)
	// falls on all paths alike rather than on whichever ran then.
	res := map[string]map[string][]float64{}
	for run := 0; run < o.Runs; run++ {
		for _, path := range o.Paths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tg := targets[path]
			if run == 0 {
				res[path] = map[string][]float64{}
			}
			// Every round warms its path up again: it sat idle while
			// the others ran (pvlink's relay pool, for one, lets its
			// workers go after 10-20 s without work).
			logf("%s: warming up", path)
			if _, _, err := Throughput(ctx, tg.dial, tg.sink, 1, o.Warmup); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if err := measurePath(ctx, o, path, tg, run, res[path], logf); err != nil {
				return nil, err
			}
		}
	}
	for _, path := range o.Paths {
		for _, m := range metricOrder {
			if v := res[path][m.name]; len(v) > 0 {
				r.Results = append(r.Results, summarize(path, m.name, m.unit, v))
			}
		}
	}
	if n := stealNote(r); n != "" {
		r.Notes = append(r.Notes, n)
	}
	return r, nil
}

// stealWarn is the share of the cores' time a hypervisor may take during a
// round before the report says so: on a VM whose host is busy, every
// figure moves with the host's load.
const stealWarn = 5.0

// stealNote is the report's note on the time the hypervisor took, if any
// round of any path lost more than stealWarn percent of the cores to it.
func stealNote(r *Report) string {
	worst, at := 0.0, ""
	for _, x := range r.Results {
		if x.Metric == "steal_pct" && x.Max > worst {
			worst, at = x.Max, x.Path
		}
	}
	if worst <= stealWarn {
		return ""
	}
	return fmt.Sprintf("The hypervisor took up to %.0f%% of the cores' time in a round (%s; steal in /proc/stat): "+
		"this machine's host was busy, and every figure moves with it. Compare paths within the same rounds, "+
		"and runs made when steal was low.", worst, at)
}

// Measurements are the groups of measurements a run can make, in the order
// each round makes them.
var Measurements = []string{"upload", "download", "bidirectional", "conns", "latency"}

// measures reports whether o asks for the measurement m (all when
// o.Measure is empty).
func (o *Options) measures(m string) bool {
	return len(o.Measure) == 0 || slices.Contains(o.Measure, m)
}

// measurePath runs one round's measurements of a path and adds them to res.
func measurePath(ctx context.Context, o Options, path string, tg target, run int, res map[string][]float64, logf func(string, ...any)) error {
	// measure runs one measurement, wrapped in forwarder profiles if asked.
	measure := func(metric, what string, m func() error) error {
		var err error
		if o.ProfileDir == "" || len(tg.fwds) == 0 {
			err = m()
		} else {
			wait := profileForwarders(tg.fwds, o.ProfileDir, fmt.Sprintf("run%d-%s", run+1, metric), o.Duration)
			err = errors.Join(m(), wait())
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", path, what, err)
		}
		return nil
	}
	var summary []string
	round0 := readCoreTimes()
	add := func(metric string, v float64, format string, args ...any) {
		res[metric] = append(res[metric], v)
		if format != "" {
			summary = append(summary, fmt.Sprintf(format, args...))
		}
	}
	if o.measures("upload") {
		var g1, g8 float64
		var b1, b8 int64
		cpu0 := cpuAll(tg.procs)
		if err := measure("throughput_1stream", "1 stream", func() (err error) {
			g1, b1, err = Throughput(ctx, tg.dial, tg.sink, 1, o.Duration)
			return err
		}); err != nil {
			return err
		}
		if err := measure("throughput_8stream", "8 streams", func() (err error) {
			g8, b8, err = Throughput(ctx, tg.dial, tg.sink, 8, o.Duration)
			return err
		}); err != nil {
			return err
		}
		cpu1 := cpuAll(tg.procs)
		add("throughput_1stream_gbps", g1, "upload 1 stream %.2f Gbit/s, 8 streams %.2f", g1, g8)
		add("throughput_8stream_gbps", g8, "")
		if len(tg.procs) > 0 {
			add("cpu_s_per_gb", (cpu1-cpu0)/(float64(b1+b8)/1e9), "")
		}
	}
	if o.measures("download") {
		var d1, d8 float64
		if err := measure("download_1stream", "1-stream download", func() (err error) {
			d1, _, err = Download(ctx, tg.dial, tg.source, 1, o.Duration)
			return err
		}); err != nil {
			return err
		}
		if err := measure("download_8stream", "8-stream download", func() (err error) {
			d8, _, err = Download(ctx, tg.dial, tg.source, 8, o.Duration)
			return err
		}); err != nil {
			return err
		}
		add("download_1stream_gbps", d1, "download 1 stream %.2f, 8 streams %.2f", d1, d8)
		add("download_8stream_gbps", d8, "")
	}
	if o.measures("bidirectional") {
		var bi float64
		if err := measure("bidirectional_1stream", "1-stream bidirectional", func() (err error) {
			bi, _, err = Bidirectional(ctx, tg.dial, tg.source, 1, o.Duration)
			return err
		}); err != nil {
			return err
		}
		add("bidirectional_1stream_gbps", bi, "bidirectional 1 stream %.2f", bi)
	}
	if o.measures("conns") {
		var cps float64
		var done, failed int64
		proxy0, cores0 := cpuAll(tg.procs), readCoreTimes()
		if err := measure("conns", "connections", func() (err error) {
			cps, done, failed, err = ConnRate(ctx, tg.dial, tg.rr, o.ConnWorker, o.ConnCount, o.Duration)
			return err
		}); err != nil {
			return err
		}
		proxy1, cores1 := cpuAll(tg.procs), readCoreTimes()
		add("conns_per_s", cps, "%.0f conns/s (%d failed)", cps, failed)
		// What a connection costs: the proxy's CPU (forwarder workers,
		// haproxy), and every core's busy time, the load generator and
		// the servers included, which are the same programs on every
		// path; and how much of the cores the path left idle.
		cores := cores1.since(cores0)
		if len(tg.procs) > 0 {
			add("conn_proxy_cpu_us", (proxy1-proxy0)/float64(done)*1e6, "proxy CPU %.0f µs/conn", (proxy1-proxy0)/float64(done)*1e6)
		}
		if cores.total > 0 {
			add("conn_machine_cpu_us", cores.busy/float64(done)*1e6, "machine CPU %.0f µs/conn", cores.busy/float64(done)*1e6)
			add("conn_idle_pct", 100*cores.idle/cores.total, "%.0f%% idle", 100*cores.idle/cores.total)
		}
	}
	if o.measures("latency") {
		var p50, p99, p999 float64
		if err := measure("latency", "latency", func() (err error) {
			p50, p99, p999, err = Latency(ctx, tg.dial, tg.rr, o.LatRate, o.Duration)
			return err
		}); err != nil {
			return err
		}
		add("latency_p50_us", p50, "latency p50 %.0f p99 %.0f p99.9 %.0f µs", p50, p99, p999)
		add("latency_p99_us", p99, "")
		add("latency_p999_us", p999, "")
	}
	if len(tg.procs) > 0 {
		add("rss_mib", float64(sumRSS(tg.procs))/(1<<20), "")
	}
	// The cores' time a hypervisor gave to others over the round: a
	// shared VM's host can take a third of it, slowing every path.
	if round := readCoreTimes().since(round0); round.total > 0 {
		add("steal_pct", 100*round.steal/round.total, "hypervisor took %.0f%% of the cores", 100*round.steal/round.total)
	}
	logf("%s run %d: %s", path, run+1, strings.Join(summary, "; "))
	return nil
}

var metricOrder = []struct{ name, unit, title string }{
	{"throughput_1stream_gbps", "Gbit/s", "1-stream upload"},
	{"throughput_8stream_gbps", "Gbit/s", "8-stream upload"},
	{"download_1stream_gbps", "Gbit/s", "1-stream download"},
	{"download_8stream_gbps", "Gbit/s", "8-stream download"},
	{"bidirectional_1stream_gbps", "Gbit/s both ways", "1-stream bidirectional"},
	{"conns_per_s", "conn/s", "new connections"},
	{"conn_proxy_cpu_us", "µs", "proxy CPU per connection"},
	{"conn_machine_cpu_us", "µs", "all cores' CPU per connection"},
	{"conn_idle_pct", "%", "cores idle during connections"},
	{"latency_p50_us", "µs", "latency p50"},
	{"latency_p99_us", "µs", "latency p99"},
	{"latency_p999_us", "µs", "latency p99.9"},
	{"cpu_s_per_gb", "CPU s/GB", "proxy CPU per GB"},
	{"rss_mib", "MiB", "proxy RSS"},
	{"steal_pct", "%", "cores taken by the hypervisor (steal)"},
}

func summarize(path, metric, unit string, v []float64) Result {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return Result{Path: path, Metric: metric, Unit: unit, Median: s[len(s)/2], Min: s[0], Max: s[len(s)-1], Runs: v}
}

// cpuAll is the CPU time of several processes together.
func cpuAll(pids []int) float64 {
	var t float64
	for _, p := range pids {
		t += cpuSeconds(p)
	}
	return t
}

// cpuSeconds is a process's user+system CPU time, from /proc/PID/stat.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// coreTimes are the machine's CPU times in seconds, all cores together,
// from the first line of /proc/stat: busy (user, nice, system, irq,
// softirq), idle (idle, iowait), the time a hypervisor gave to others
// (steal), and total, all three.
type coreTimes struct{ busy, idle, steal, total float64 }

func readCoreTimes() coreTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return coreTimes{}
	}
	return parseCoreTimes(string(data))
}

// parseCoreTimes reads the "cpu" line of /proc/stat's text (USER_HZ
// ticks); zero if there is none.
func parseCoreTimes(stat string) coreTimes {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return coreTimes{}
	}
	var t [8]float64 // user nice system idle iowait irq softirq steal
	for i := range t {
		v, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return coreTimes{}
		}
		t[i] = v / 100
	}
	c := coreTimes{busy: t[0] + t[1] + t[2] + t[5] + t[6], idle: t[3] + t[4], steal: t[7]}
	c.total = c.busy + c.idle + c.steal
	return c
}

func (c coreTimes) since(before coreTimes) coreTimes {
	return coreTimes{busy: c.busy - before.busy, idle: c.idle - before.idle, steal: c.steal - before.steal, total: c.total - before.total}
}

// rssBytes is a process's resident set, from /proc/PID/status.
func rssBytes(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func machine() string {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	kernel := "?"
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(data))
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}

// upFabric brings up a bench fabric from a topology with NAME in it.
func upFabric(exe, name, topology string) (*ctl.Report, func(), error) {
	c, r, err := ctl.Up(exe, []byte(strings.ReplaceAll(topology, "NAME", name)), "bench")
	if err != nil {
		if c != nil {
			c.Down()
		}
		return nil, nil, err
	}
	return r, func() { c.Down() }, nil
}

// fabricTarget is where the pvlink path's servers listen.
const fabricTarget = "198.19.1.10"

// benchVPCs are the two VPCs of every benchmark fabric: one subnet each in
// one AZ.
const benchVPCs = `vpcs:
  - name: provider
    cidr: 198.19.0.0/16
    subnets: [{name: p1, availability_zone: use1-az1, cidr: 198.19.1.0/24}]
  - name: consumer
    cidr: 198.18.0.0/16
    subnets: [{name: c1, availability_zone: use1-az1, cidr: 198.18.1.0/24}]
`

// benchNLB is the head of the NLB of every benchmark fabric; its
// listeners follow.
const benchNLB = `load_balancers:
  - name: nlb
    vpc: provider
    subnet_mappings: [{subnet: p1, private_ipv4_address: 198.19.1.5}]
`

// benchEndpoint is the endpoint service of every benchmark fabric's NLB,
// and the consumer's endpoint to it, at 198.18.1.10.
const benchEndpoint = `endpoint_services:
  - {name: svc, load_balancers: [nlb], allowed_principals: ["*"]}
endpoints:
  - {name: ep, vpc: consumer, service: svc, subnet_configurations: [{subnet: c1, ipv4: 198.18.1.10}]}
`

// fabricTopology is the pvlink path: one AZ, an endpoint in front of an NLB
// whose target group sends proxy protocol v2, ports 80 (sink), 81
// (request/response) and 82 (source), with WORKERS forwarder workers.
const fabricTopology = `name: NAME
region: us-east-1
availability_zones: [use1-az1]
forwarder_workers: WORKERS
` + benchVPCs + `target_groups:
  - {name: sink, vpc: provider, port: 9100, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [{ip: 198.19.1.10, external: true}]}
  - {name: rr, vpc: provider, port: 9101, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [{ip: 198.19.1.10, external: true}]}
  - {name: source, vpc: provider, port: 9102, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [{ip: 198.19.1.10, external: true}]}
` + benchNLB + `    listeners:
      - {protocol: TCP, port: 80, target_group: sink}
      - {protocol: TCP, port: 81, target_group: rr}
      - {protocol: TCP, port: 82, target_group: source}
` + benchEndpoint
