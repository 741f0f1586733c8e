package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

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
			var out []ctl.FabricSummary
			for _, name := range ctl.Fabrics() {
				out = append(out, ctl.Summarize(name))
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if out == nil {
					out = []ctl.FabricSummary{}
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
