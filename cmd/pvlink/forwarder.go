package main

import (
	"runtime"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/dataplane"
	"pvlink.dev/pvlink/internal/buildinfo"
)

func newForwarderCmd() *cobra.Command {
	var o dataplane.ServeOptions
	var verbose bool
	var procs int
	var queues map[string]int
	c := &cobra.Command{
		Use:   "forwarder --config FILE --control SOCKET",
		Short: "Run the forwarder of one Availability Zone (started by ctld)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log, o.Revision = logger(verbose), buildinfo.Revision()
			if procs > 0 {
				runtime.GOMAXPROCS(procs)
			}
			o.Queues = dataplane.InheritedQueues(queues)
			return dataplane.Serve(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.ConfigPath, "config", "", "first config snapshot (JSON, written by ctld)")
	c.Flags().StringVar(&o.ControlPath, "control", "", "unix socket on which ctld pushes snapshots and reads the forwarder's status")
	c.Flags().StringVar(&o.MetricsListen, "metrics", "127.0.0.1:0", "address of the Prometheus metrics endpoint")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each refused connection")
	c.Flags().StringToIntVar(&queues, "tun-queue", nil, "TUN=FD: an inherited descriptor of a queue of TUN to take instead of opening one (ctld passes its predecessor's)")
	// One P by default: the relay is a chain of short hand-offs between
	// goroutines, and with a second P the runtime spent a quarter of the
	// forwarder's CPU waking and parking threads. An AZ scales out with
	// forwarder_workers instead, as HAProxy does with threads.
	c.Flags().IntVar(&procs, "gomaxprocs", 1, "Go scheduler threads (GOMAXPROCS) of this process; 0 = one per core")
	c.MarkFlagRequired("config")
	c.MarkFlagRequired("control")
	return c
}
