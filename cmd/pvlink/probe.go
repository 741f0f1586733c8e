package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl/probe"
)

func newFabricProbeCmd() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "probe [NAME | -f FILE]",
		Short: "Connect from the consumer VPC to every ENI port and show what each target saw",
		Long: "For every available endpoint, ENI and port, connects from inside the consumer\n" +
			"VPC's namespace, prints the target's report of the connection, and checks that\n" +
			"the target saw the load-balancer node of that AZ as the source (never the\n" +
			"consumer). Endpoints that are not available are skipped: they carry nothing.\n" +
			"Exits non-zero if any probe fails.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, s, err := fabricStatus(cmd, file, args)
			if err != nil {
				return err
			}
			var each func(probe.Result)
			if output == "table" {
				each = func(r probe.Result) { fmt.Fprintln(cmd.OutOrStdout(), r) }
			}
			results, failed := probe.Fabric(cmd.Context(), s, each)
			if output == "json" {
				writeJSON(cmd.OutOrStdout(), results)
			}
			if failed > 0 {
				probed := 0
				for _, r := range results {
					if r.Skipped == "" {
						probed++
					}
				}
				return fmt.Errorf("%d of %d probes failed", failed, probed)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addOutputFlag(c, &output)
	return c
}
