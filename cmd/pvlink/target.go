package main

import (
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

func newTargetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "target",
		Short: "Register and deregister targets; serve one (ctld runs a server per target)",
	}
	c.AddCommand(newTargetServeCmd(), newTargetVerbCmd("register"), newTargetVerbCmd("deregister"))
	return c
}

func newTargetServeCmd() *cobra.Command {
	var listen, ns, readyFile string
	t := &peer.Target{}
	c := &cobra.Command{
		Use:   "serve --listen ADDR",
		Short: "A TCP server that reports each connection as a JSON line, then echoes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ln net.Listener
			var nsInode uint64
			listenFn := func() (err error) { ln, err = net.Listen("tcp", listen); return err }
			var err error
			if ns != "" {
				err = nsenter.Do(ns, func() error {
					nsInode, _ = nsenter.ThreadInode()
					return listenFn()
				})
			} else {
				err = listenFn()
			}
			if err != nil {
				return err
			}
			t.Log = os.Stdout
			if readyFile != "" {
				if err := snapshot.WriteJSONFile(readyFile, snapshot.TargetReady{PID: os.Getpid(), Listen: ln.Addr().String(), NetnsInode: nsInode}); err != nil {
					return err
				}
				defer os.Remove(readyFile)
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			go func() { <-sig; ln.Close() }()
			return t.Serve(ln)
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "address to listen on (IP:PORT)")
	c.Flags().StringVar(&ns, "netns", "", "network namespace to listen in")
	c.Flags().StringVar(&t.Name, "name", "", "name shown in each report (the target group)")
	c.Flags().StringVar(&t.AZ, "az", "", "Availability Zone shown in each report")
	c.Flags().StringVar(&readyFile, "ready-file", "", "file written once the listener is open")
	c.Flags().BoolVar(&t.ProxyProtocol, "proxy-protocol", false, "read a PROXY protocol v2 header first and report it")
	c.MarkFlagRequired("listen")
	return c
}
