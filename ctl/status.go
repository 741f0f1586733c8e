package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is `fabric status`: the state of a fabric with what is alive now.
type Report struct {
	Name          string             `json:"name"`
	Region        string             `json:"region"`
	Phase         string             `json:"phase"`
	File          string             `json:"file,omitempty"`
	VPCs          []VPCState         `json:"vpcs"`
	LoadBalancers []LBState          `json:"load_balancers"`
	TargetGroups  []TargetGroupState `json:"target_groups"`
	Services      []ServiceState     `json:"services"`
	Endpoints     []EndpointState    `json:"endpoints"`
	Targets       []TargetReport     `json:"targets"`
	Forwarders    []ForwarderReport  `json:"forwarders"`
}

// TargetReport is a target with its process's liveness.
type TargetReport struct {
	TargetState
	PID   int  `json:"pid,omitempty"`
	Alive bool `json:"alive"`
}

// ForwarderReport is a forwarder with its process's liveness and where its
// metrics are served.
type ForwarderReport struct {
	ForwarderState
	PID           int    `json:"pid"`
	Alive         bool   `json:"alive"`
	Metrics       string `json:"metrics"`
	ConfigVersion uint64 `json:"config_version"`
}

// Report builds the status of a fabric.
func (s *State) Report() *Report {
	r := &Report{
		Name: s.Name, Region: s.Region, Phase: s.Phase, File: s.File,
		VPCs: s.VPCs, LoadBalancers: s.LoadBalancers, TargetGroups: s.TargetGroups,
		Services: s.Services, Endpoints: s.Endpoints,
	}
	for _, t := range s.Targets {
		tr := TargetReport{TargetState: t}
		p := t.Process
		if p == nil && !t.External {
			// Registered in several groups: one server serves them all.
			for _, o := range s.Targets {
				if o.IP == t.IP && o.Port == t.Port && o.Process != nil {
					p = o.Process
				}
			}
		}
		if p != nil {
			tr.PID = p.PID
			tr.Alive = p.Alive()
		}
		r.Targets = append(r.Targets, tr)
	}
	for _, f := range s.Forwarders {
		fr := ForwarderReport{ForwarderState: f}
		if f.Process != nil {
			fr.PID = f.Process.PID
			fr.Alive = f.Process.Alive()
		}
		if st, err := ForwarderStatus(f); err == nil && fr.Alive {
			fr.Metrics = "http://" + st.Metrics + "/metrics"
			fr.ConfigVersion = st.ConfigVersion
		}
		r.Forwarders = append(r.Forwarders, fr)
	}
	return r
}

// WriteTable prints a report for people.
func (r *Report) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "fabric %s (%s), %s\n\n", r.Name, r.Region, r.Phase)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VPC\tID\tNETNS\tCIDR")
	for _, v := range r.VPCs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.ID, v.Netns, v.CIDR)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SERVICE\tSTATE\tLOAD BALANCERS")
	for _, s := range r.Services {
		fmt.Fprintf(w, "%s\t%s\t%s\n", s.ServiceName, s.State, strings.Join(s.LoadBalancers, ","))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ENDPOINT\tSTATE\tVPC\tPORTS\tAZ\tENI IP\tTUN")
	for _, e := range r.Endpoints {
		ports := make([]string, len(e.Ports))
		for i, p := range e.Ports {
			ports[i] = strconv.Itoa(p)
		}
		for _, eni := range e.ENIs {
			ips := strings.Trim(eni.IP+","+eni.IPv6, ",")
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.State, e.VPC, strings.Join(ports, ","), eni.AZ, ips, eni.Tun)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "LOAD BALANCER\tAZ\tNODE IP")
	for _, lb := range r.LoadBalancers {
		for _, n := range lb.Nodes {
			fmt.Fprintf(w, "%s\t%s\t%s\n", lb.Name, n.AZ, n.IP)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "TARGET\tAZ\tGROUP\tPID\tALIVE")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "%s:%d\t%s\t%s\t%s\t%s\n", t.IP, t.Port, t.AZ, t.TargetGroup, pidString(t.PID), yesNo(t.Alive))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "FORWARDER\tPID\tALIVE\tMETRICS")
	for _, f := range r.Forwarders {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Label(), pidString(f.PID), yesNo(f.Alive), f.Metrics)
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
