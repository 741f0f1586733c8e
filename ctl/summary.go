package ctl

import "pvlink.dev/pvlink/nsenter"

// FabricSummary is one line of `pvlink fabric list`: a fabric, its ctld,
// and how much of what it should have on the host is there.
type FabricSummary struct {
	Name              string `json:"name"`
	Phase             string `json:"phase"`
	CtldPID           int    `json:"ctld_pid"`
	Version           uint64 `json:"version"`
	Endpoints         int    `json:"endpoints"`
	Forwarders        int    `json:"forwarders"`
	ForwardersAlive   int    `json:"forwarders_alive"`
	Namespaces        int    `json:"namespaces"`
	NamespacesPresent int    `json:"namespaces_present"`
	Error             string `json:"error,omitempty"`
}

// Summarize asks a fabric's ctld for its status and checks its processes
// and namespaces. It starts nothing: a fabric whose ctld is not running
// says so.
func Summarize(name string) FabricSummary {
	f := FabricSummary{Name: name}
	c := Connect(name)
	if !c.Running() {
		f.Error = "ctld is not running: pvlink fabric status " + name + " starts it again"
		return f
	}
	r, err := c.Status()
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Phase, f.Endpoints = r.Phase, len(r.Endpoints)
	f.Forwarders, f.Namespaces = len(r.Forwarders), len(r.VPCs)
	f.CtldPID, f.Version = r.Ctld.PID, r.Version
	for _, fw := range r.Forwarders {
		if fw.Alive {
			f.ForwardersAlive++
		}
	}
	for _, v := range r.VPCs {
		if nsenter.Exists(v.Netns) {
			f.NamespacesPresent++
		}
	}
	return f
}
