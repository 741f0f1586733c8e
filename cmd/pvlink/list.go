package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
)

// fabricSummary is one line of `pvlink fabric list`.
type fabricSummary struct {
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

func newFabricListCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the fabrics on this machine, with how many of their forwarders and namespaces are still there",
		Long: `List the fabrics whose state is on this machine. Each fabric has a ctld that restarts its
forwarders when they die; a fabric whose ctld is not running (killed, or after a
reboot) is brought back, with all its state, by 'pvlink fabric status NAME'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []fabricSummary
			for _, name := range ctl.Fabrics() {
				out = append(out, describeFabric(name))
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if out == nil {
					out = []fabricSummary{}
				}
				return enc.Encode(out)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tPHASE\tVERSION\tCTLD\tENDPOINTS\tFORWARDERS ALIVE\tNAMESPACES PRESENT")
			for _, f := range out {
				if f.Error != "" {
					fmt.Fprintf(w, "%s\t(%s)\t-\t-\t-\t-\t-\n", f.Name, f.Error)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d/%d\t%d/%d\n", f.Name, f.Phase, f.Version, f.CtldPID,
					f.Endpoints, f.ForwardersAlive, f.Forwarders, f.NamespacesPresent, f.Namespaces)
			}
			return w.Flush()
		},
	}
	addOutputFlag(c, &output)
	return c
}

// describeFabric asks a fabric's ctld for its status and checks its
// processes and namespaces.
func describeFabric(name string) fabricSummary {
	f := fabricSummary{Name: name}
	c := ctl.Connect(name)
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
