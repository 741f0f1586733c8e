package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
)

func newClientCmd() *cobra.Command {
	var ns string
	var size int64
	c := &peer.Client{}
	cmd := &cobra.Command{
		Use:   "client ADDR",
		Short: "Connect to a pvlink target, print its report, check the echo",
		Long: "Connects to ADDR (through an ENI, typically), sends a message or --bytes of a\n" +
			"seeded stream, half-closes, and checks the echo byte for byte (SHA-256).\n" +
			"Prints one JSON object; exits non-zero if the echo differs.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Addr = args[0]
			c.Bytes = size
			if ns != "" {
				c.Dial = func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
					err = nsenter.Do(ns, func() error {
						conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
						return err
					})
					return conn, err
				}
			}
			res, err := c.Run(cmd.Context())
			if err != nil {
				return err
			}
			out, _ := json.Marshal(res)
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			if !res.Intact {
				return fmt.Errorf("echo differs from what was sent (%d bytes sent, %d echoed)", res.Sent, res.Echoed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ns, "netns", "", "network namespace to connect from")
	cmd.Flags().StringVar(&c.Message, "message", "", "message to send (default: a greeting)")
	cmd.Flags().Int64Var(&size, "bytes", 0, "send this many bytes of a seeded pseudo-random stream instead")
	cmd.Flags().DurationVar(&c.Timeout, "timeout", 60*time.Second, "give up after this long")
	return cmd
}
