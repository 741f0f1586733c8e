package ctl

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"pvlink.dev/pvlink/ctl/store"
)

// Report is `fabric status`: the model with what runs on the host now.
type Report struct {
	Name    string `json:"name"`
	Region  string `json:"region"`
	File    string `json:"file,omitempty"`
	Version uint64 `json:"version"`
	// Phase is up (the host runs the model's version), converging, or
	// error (Error says why the host does not match yet).
	Phase string     `json:"phase"`
	Error string     `json:"error,omitempty"`
	Ctld  CtldReport `json:"ctld"`
	API   APIReport  `json:"api"`
	DNS   DNSReport  `json:"dns"`

	Accounts          []Account          `json:"accounts"`
	AvailabilityZones []string           `json:"availability_zones"`
	VPCs              []VPCState         `json:"vpcs"`
	LoadBalancers     []LBState          `json:"load_balancers"`
	TargetGroups      []TargetGroupState `json:"target_groups"`
	Services          []ServiceState     `json:"services"`
	Endpoints         []EndpointState    `json:"endpoints"`
	PublicZones       []PublicZoneState  `json:"public_dns_zones,omitempty"`
	Targets           []TargetReport     `json:"targets"`
	Forwarders        []ForwarderReport  `json:"forwarders"`
	FlowLogs          []FlowLogState     `json:"flow_logs,omitempty"`
	Faults            []FaultState       `json:"faults,omitempty"`
}

// APIReport is where the AWS-compatible API answers: aws --endpoint-url.
// DNSReport is where the fabric's DNS answers.
type DNSReport struct {
	// Public is the public DNS server (providers' zones), on loopback.
	Public string `json:"public"`
	// Resolvers are each VPC's resolver: its base address + 2.
	Resolvers map[string]string `json:"resolvers"`
}

type APIReport struct {
	URL string `json:"url,omitempty"`
	// Metrics is the fabric's Prometheus scrape point: ctld's metrics and
	// every forwarder's, labelled by az and worker.
	Metrics string `json:"metrics,omitempty"`
	// Throttled counts the calls refused by the per-account throttle.
	Throttled uint64 `json:"throttled_calls"`
}

// CtldReport is the daemon that owns the fabric.
type CtldReport struct {
	PID      int       `json:"pid"`
	Socket   string    `json:"socket"`
	Store    string    `json:"store"`
	Revision uint64    `json:"store_revision"`
	Started  time.Time `json:"started"`
}

// TargetReport is a target with its server's liveness.
type TargetReport struct {
	TargetState
	PID   int    `json:"pid,omitempty"`
	Alive bool   `json:"alive"`
	Log   string `json:"log,omitempty"`
}

// ForwarderReport is a forwarder process: alive or not, the snapshot version
// it runs, where its metrics are served, how often ctld restarted it.
type ForwarderReport struct {
	ForwarderState
	PID           int    `json:"pid"`
	Alive         bool   `json:"alive"`
	Metrics       string `json:"metrics"`
	ConfigVersion uint64 `json:"config_version"`
	Restarts      int    `json:"restarts"`
	Log           string `json:"log"`
	// TUNQueues is how many TUN queues the forwarder has open, and
	// QueuesKept how many of them ctld holds a copy of, which a worker
	// started again would take over.
	TUNQueues  int `json:"tun_queues"`
	QueuesKept int `json:"queues_kept"`
}

// report builds the status of the fabric.
func (d *Daemon) report() *Report {
	m := d.current()
	applied, ready, rerr := d.r.outcome()
	r := &Report{
		Name: m.Name, Region: m.Region, File: m.File, Version: m.Version, Phase: "up",
		API:      APIReport{URL: d.apiURL},
		Ctld:     CtldReport{PID: os.Getpid(), Socket: SocketPath(d.name), Store: filepath.Join(StoreDir(d.name), "state.db"), Started: d.started},
		Accounts: m.Accounts, AvailabilityZones: m.AvailabilityZones, VPCs: m.VPCs, LoadBalancers: m.LoadBalancers, TargetGroups: m.TargetGroups,
		Services: m.Services, PublicZones: m.PublicZones, FlowLogs: m.FlowLogs, Faults: m.Faults,
	}
	if d.apiURL != "" {
		r.API.Metrics = d.apiURL + "/metrics"
	}
	d.st.View(func(tx store.ReadTx) error { r.Ctld.Revision = tx.Rev(); return nil })
	r.DNS = DNSReport{Public: d.PublicDNS(), Resolvers: map[string]string{}}
	for _, v := range m.VPCs {
		if a, err := ResolverAddr(v.CIDR); err == nil {
			r.DNS.Resolvers[v.Name] = a.String()
		}
	}
	for _, e := range m.Endpoints {
		e.DNSNames = m.DNSNames(e)
		e.Region, e.ServiceRegion = cmpOr(e.Region, m.Region), cmpOr(e.ServiceRegion, m.Region)
		r.Endpoints = append(r.Endpoints, e)
	}
	if th, ok := d.api.(interface{ ThrottledCalls() uint64 }); ok {
		r.API.Throttled = th.ThrottledCalls()
	}
	if applied < m.Version || !ready || m.Unsettled() {
		r.Phase = "converging"
	}
	if rerr != nil {
		r.Phase, r.Error = "error", rerr.Error()
	}
	servers := map[string]*Process{}
	for _, ts := range desiredTargets(m) {
		servers[ts.key] = findProcess(d.r.procPath(ts.key, ".pid"), "")
	}
	for _, t := range m.Targets {
		key := fmt.Sprintf("target-%s-%d", t.IP, t.Port)
		tr := TargetReport{TargetState: t}
		if !t.External {
			tr.Log = d.r.procPath(key, ".log")
		}
		if p := servers[key]; p != nil {
			tr.PID, tr.Alive = p.PID, true
		}
		r.Targets = append(r.Targets, tr)
	}
	d.r.mu.Lock()
	restarts := maps.Clone(d.r.restarts)
	kept := map[string]int{}
	for key, held := range d.r.queues {
		kept[key] = len(held)
	}
	d.r.mu.Unlock()
	for _, f := range desiredForwarders(m) {
		key := forwarderKey(f.AZ, f.Worker, f.Workers)
		fr := ForwarderReport{ForwarderState: f, Restarts: restarts[key], Log: d.r.procPath(key, ".log"), QueuesKept: kept[key]}
		if p := findProcess(d.r.procPath(key, ".pid"), ""); p != nil {
			fr.PID, fr.Alive = p.PID, true
			if st, err := forwarderStatus(d.r.procPath(key, ".sock")); err == nil {
				fr.Metrics = "http://" + st.Metrics + "/metrics"
				fr.ConfigVersion = st.ConfigVersion
				fr.TUNQueues = len(st.TUNQueues)
			}
		}
		r.Forwarders = append(r.Forwarders, fr)
	}
	return r
}

// MetricsBase is the forwarder's loopback HTTP address, for its JSON
// documents.
func (f ForwarderReport) MetricsBase() string { return strings.TrimSuffix(f.Metrics, "/metrics") }

// privateDNSName is the private DNS name an endpoint answers to, if it
// has it enabled and its service has one.
func (r *Report) privateDNSName(e EndpointState) string {
	if !e.PrivateDNSEnabled {
		return ""
	}
	for _, s := range r.Services {
		if s.ID == e.ServiceID && s.PrivateDNS != nil {
			return s.PrivateDNS.Name
		}
	}
	return ""
}

// WriteTable prints a report for people.
func (r *Report) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "fabric %s (%s), %s at version %d; ctld pid %d, store %s (revision %d)\n", r.Name, r.Region, r.Phase, r.Version, r.Ctld.PID, r.Ctld.Store, r.Ctld.Revision)
	if r.Error != "" {
		fmt.Fprintf(out, "not converged: %s\n", r.Error)
	}
	for _, f := range r.Faults {
		what := f.AZ + f.Region
		fmt.Fprintf(out, "FAULT: %s %s since %s (pvlink fault %s %s %s lifts it)\n", f.Kind, what, f.Since.Format(time.RFC3339), strings.Replace(f.Kind, "-down", "-up", 1), r.Name, what)
	}
	if r.API.URL != "" {
		fmt.Fprintf(out, "API %s (aws --endpoint-url), Prometheus scrape point %s\n", r.API.URL, r.API.Metrics)
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VPC\tID\tOWNER\tNETNS\tCIDR\tRESOLVER\tDNS HOSTNAMES")
	for _, v := range r.VPCs {
		// The resolver answers with the VPC's DNS support on; private DNS
		// names need its DNS hostnames on too (vpcdns.go).
		resolver, hostnames := cmpOr(r.DNS.Resolvers[v.Name], "-"), "on"
		if v.DNSSupportOff {
			resolver = "off"
		}
		if v.DNSHostnamesOff {
			hostnames = "off"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.ID, v.OwnerID, v.Netns, v.CIDR, resolver, hostnames)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SERVICE\tSTATE\tOWNER\tLOAD BALANCERS\tACCEPTANCE\tALLOWED PRINCIPALS")
	for _, s := range r.Services {
		acceptance := "automatic"
		if s.AcceptanceRequired {
			acceptance = "required"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ServiceName, s.State, s.OwnerID, strings.Join(s.LoadBalancers, ","), acceptance, principalList(s.AllowedPrincipals))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ENDPOINT\tSTATE\tOWNER\tVPC\tPORTS\tAZ\tENI IP\tTUN")
	for _, e := range r.Endpoints {
		ports := make([]string, len(e.Ports))
		for i, p := range e.Ports {
			ports[i] = strconv.Itoa(p)
		}
		for _, eni := range e.ENIs {
			ips := strings.Trim(eni.IP+","+eni.IPv6, ",")
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.State, e.OwnerID, e.VPC, strings.Join(ports, ","), eni.AZ, ips, eni.Tun)
		}
	}
	if len(r.Endpoints) > 0 {
		// The names a consumer reaches its endpoint by, in its VPC.
		fmt.Fprintln(w)
		fmt.Fprintln(w, "ENDPOINT\tAZ\tDNS NAME")
		for _, e := range r.Endpoints {
			for i, n := range e.DNSNames {
				az := "all"
				if i > 0 && i <= len(e.ENIs) {
					az = e.ENIs[i-1].AZ
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", e.ID, az, n)
			}
			if name := r.privateDNSName(e); name != "" {
				fmt.Fprintf(w, "%s\t%s\t%s (private DNS)\n", e.ID, "all", name)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "LOAD BALANCER\tAZ\tNODE IP\tCROSS-ZONE\tLISTENERS\tSECURITY GROUPS")
	for _, lb := range r.LoadBalancers {
		var listeners []string
		for _, l := range lb.Listeners {
			listeners = append(listeners, fmt.Sprintf("%d->%s", l.Port, l.TargetGroup))
		}
		for _, n := range lb.Nodes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", lb.Name, n.AZ, n.IP, onOff(lb.CrossZone), orDash(strings.Join(listeners, ",")), lb.describeSecurityGroups())
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "TARGET\tAZ\tGROUP\tPID\tALIVE")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "%s:%d\t%s\t%s\t%s\t%s\n", t.IP, t.Port, t.AZ, t.TargetGroup, pidString(t.PID), yesNo(t.Alive))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "FORWARDER\tPID\tALIVE\tVERSION\tRESTARTS\tQUEUES KEPT\tMETRICS")
	for _, f := range r.Forwarders {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d/%d\t%s\n", f.Label(), pidString(f.PID), yesNo(f.Alive), f.ConfigVersion, f.Restarts, f.QueuesKept, f.TUNQueues, f.Metrics)
	}
	if len(r.FlowLogs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "FLOW LOG\tRESOURCE\tTRAFFIC\tINTERVAL\tDESTINATION")
		for _, f := range r.FlowLogs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%ds\t%s\n", f.ID, f.ResourceID, f.TrafficType, f.Interval, f.Destination)
		}
	}
	w.Flush()
}

func pidString(pid int) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// orDash is s, or "-" for nothing, so that a table's column is never empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
