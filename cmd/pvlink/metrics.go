package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// fromForwarders reads one JSON document (path: /counters, /flows, ...)
// from every forwarder process of a fabric.
func fromForwarders[T any](cmd *cobra.Command, name, path string) ([]ctl.ForwarderDoc[T], error) {
	c, err := client(cmd, name)
	if err != nil {
		return nil, err
	}
	s, err := c.Status()
	if err != nil {
		return nil, err
	}
	return ctl.ReadForwarders[T](s, path)
}

// addOutputFlag gives a command -o table|json and refuses anything else
// before the command runs.
func addOutputFlag(c *cobra.Command, output *string) {
	c.Flags().StringVarP(output, "output", "o", "table", "table or json")
	c.PreRunE = func(*cobra.Command, []string) error {
		if *output != "table" && *output != "json" {
			return fmt.Errorf("-o %s: use table or json", *output)
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

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
			docs, err := fromForwarders[[]snapshot.ENICounters](cmd, name, "/counters")
			if err != nil {
				return err
			}
			// An ENI's counters are the sum over the AZ's workers.
			rows := ctl.SumENICounters(docs)
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), rows)
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
	addOutputFlag(c, &output)
	return c
}

func newFlowsCmd() *cobra.Command {
	var file, output, az string
	c := &cobra.Command{
		Use:   "flows [NAME | -f FILE]",
		Short: "List the forwarders' flows, like conntrack -L",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			docs, err := fromForwarders[[]snapshot.FlowInfo](cmd, name, "/flows")
			if err != nil {
				return err
			}
			type row struct {
				AZ     string `json:"az"`
				Worker int    `json:"worker"`
				node   string // the AZ, and the worker when there are several
				snapshot.FlowInfo
			}
			rows := []row{}
			for _, d := range docs {
				if az != "" && d.AZ != az {
					continue
				}
				for _, f := range d.Doc {
					rows = append(rows, row{d.AZ, d.Worker, d.Label(), f})
				}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			for _, r := range rows {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s src=%s dst=%s eni=%s [nat] src=%s dst=%s (%s) bytes_in=%d bytes_out=%d idle=%.0fs/%.0fs\n",
					r.Proto, r.node, r.Src, r.Dst, r.ENI, r.Node, r.Target, r.TargetState, r.BytesIn, r.BytesOut, r.IdleSeconds, r.IdleTimeout)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pvlink flows: %d flows\n", len(rows))
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addOutputFlag(c, &output)
	c.Flags().StringVar(&az, "az", "", "only this Availability Zone's forwarder")
	return c
}

func newTargetHealthCmd() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "target-health [NAME | -f FILE]",
		Short: "Show each load-balancer node's view of its targets (like describe-target-health)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			docs, err := fromForwarders[[]snapshot.TargetInfo](cmd, name, "/targets")
			if err != nil {
				return err
			}
			// Each node (each worker, with several) keeps its own view.
			byNode := map[string][]snapshot.TargetInfo{}
			for _, d := range docs {
				byNode[d.Label()] = d.Doc
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), byNode)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NODE AZ\tLOAD BALANCER/TARGET GROUP\tTARGET\tTARGET AZ\tSTATE\tCONNECTIONS")
			for _, d := range docs {
				for _, t := range d.Doc {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", d.Label(), t.Group, t.Target, t.AZ, t.State, t.Conns)
				}
			}
			return w.Flush()
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addOutputFlag(c, &output)
	return c
}
