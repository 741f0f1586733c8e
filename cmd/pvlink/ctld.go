package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/api"
	"pvlink.dev/pvlink/internal/buildinfo"
)

func newCtldCmd() *cobra.Command {
	var o ctl.DaemonOptions
	var verbose bool
	c := &cobra.Command{
		Use:   "ctld --fabric NAME",
		Short: "Run the control daemon of a fabric: the one writer of its model (fabric up starts it)",
		Long: `ctld owns one fabric: it keeps the model in a store (bbolt, under ` + ctl.DataDir + `/NAME),
answers the CLI on a unix socket (` + ctl.RunDir + `/NAME/ctld.sock), makes the host
match the model (namespaces, TUNs, routes, targets, forwarders), restarts
forwarders that die, and pushes each new snapshot to them. Stopping it
leaves the fabric running; started again, it adopts what it finds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			exe, err := exePath()
			if err != nil {
				return err
			}
			o.Exe, o.Log, o.Revision = exe, logger(verbose), buildinfo.Revision()
			o.API = func(d *ctl.Daemon) http.Handler { return api.New(d, o.Log) }
			return ctl.RunDaemon(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Fabric, "fabric", "", "the fabric this daemon owns")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every step")
	c.Flags().StringVar(&o.APIListen, "api-listen", "127.0.0.1:0", "loopback address of the AWS-compatible API (port 0: one is picked and kept)")
	c.MarkFlagRequired("fabric")
	return c
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pvlink's module version and the VCS revision it was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String())
		},
	}
}
