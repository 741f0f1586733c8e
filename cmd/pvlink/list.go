package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
)

// fabricSummary is one line of `pvlink fabric list`.
type fabricSummary struct {
	Name              string    `json:"name"`
	Phase             string    `json:"phase"`
	Created           time.Time `json:"created"`
	Endpoints         int       `json:"endpoints"`
	Forwarders        int       `json:"forwarders"`
	ForwardersAlive   int       `json:"forwarders_alive"`
	Namespaces        int       `json:"namespaces"`
	NamespacesPresent int       `json:"namespaces_present"`
	Error             string    `json:"error,omitempty"`
}

func newFabricListCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the fabrics on this machine, with how many of their forwarders and namespaces are still there",
		Long: `List the fabrics whose state is on this machine. A fabric whose forwarders
are gone (a reboot, a killed process) shows fewer alive than it has; take it down
with 'pvlink fabric down NAME', or bring it back with 'pvlink fabric up'.`,
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
			fmt.Fprintln(w, "NAME\tPHASE\tCREATED\tENDPOINTS\tFORWARDERS ALIVE\tNAMESPACES PRESENT")
			for _, f := range out {
				if f.Error != "" {
					fmt.Fprintf(w, "%s\t(%s)\t-\t-\t-\t-\n", f.Name, f.Error)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d/%d\t%d/%d\n", f.Name, f.Phase, f.Created.Local().Format(time.DateTime),
					f.Endpoints, f.ForwardersAlive, f.Forwarders, f.NamespacesPresent, f.Namespaces)
			}
			return w.Flush()
		},
	}
	addOutputFlag(c, &output)
	return c
}

// describeFabric reads a fabric's state and checks its processes and
// namespaces.
func describeFabric(name string) fabricSummary {
	f := fabricSummary{Name: name}
	s, err := ctl.LoadState(name)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Phase, f.Created, f.Endpoints = s.Phase, s.Created, len(s.Endpoints)
	f.Forwarders, f.Namespaces = len(s.Forwarders), len(s.Namespaces)
	for _, fw := range s.Forwarders {
		if fw.Process != nil && fw.Process.Alive() {
			f.ForwardersAlive++
		}
	}
	for _, ns := range s.Namespaces {
		if nsenter.Exists(ns) {
			f.NamespacesPresent++
		}
	}
	return f
}
