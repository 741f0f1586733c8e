package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/dataplane"
)

func newFabricMetricsCmd() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "metrics [NAME | -f FILE]",
		Short: "Show the endpoint metrics of every forwarder (as CloudWatch names them)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			s, err := ctl.LoadState(name)
			if err != nil {
				return fmt.Errorf("fabric %s is not up", name)
			}
			type row struct {
				AZ string `json:"az"`
				dataplane.ENICounters
			}
			var rows []row
			client := &http.Client{Timeout: 5 * time.Second}
			for _, f := range s.Report().Forwarders {
				if !f.Alive || f.Metrics == "" {
					return fmt.Errorf("forwarder for %s is not running", f.AZ)
				}
				resp, err := client.Get(strings.TrimSuffix(f.Metrics, "/metrics") + "/counters")
				if err != nil {
					return fmt.Errorf("forwarder for %s: %w", f.AZ, err)
				}
				var cs []dataplane.ENICounters
				err = json.NewDecoder(resp.Body).Decode(&cs)
				resp.Body.Close()
				if err != nil {
					return fmt.Errorf("forwarder for %s: %w", f.AZ, err)
				}
				for _, c := range cs {
					rows = append(rows, row{f.AZ, c})
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "AZ\tENDPOINT\tENI\tActiveConnections\tNewConnections\tBytesProcessed\tPacketsDropped\tRstPacketsReceived")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.AZ, r.EndpointID, r.ENI, r.ActiveConnections, r.NewConnections, r.BytesProcessed, r.PacketsDropped, r.RstPacketsReceived)
			}
			return w.Flush()
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return c
}
