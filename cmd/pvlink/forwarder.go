package main

import (
	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/dataplane"
)

func newForwarderCmd() *cobra.Command {
	var o dataplane.ServeOptions
	var verbose bool
	c := &cobra.Command{
		Use:   "forwarder --config FILE",
		Short: "Run the forwarder of one Availability Zone (started by fabric up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = logger(verbose)
			return dataplane.Serve(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.ConfigPath, "config", "", "forwarder config snapshot (JSON, written by ctl); SIGHUP reloads it")
	c.Flags().StringVar(&o.MetricsListen, "metrics", "127.0.0.1:0", "address of the Prometheus metrics endpoint")
	c.Flags().StringVar(&o.StatusPath, "status-file", "", "file to write the forwarder's status to once it carries traffic")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each refused connection")
	c.MarkFlagRequired("config")
	return c
}
