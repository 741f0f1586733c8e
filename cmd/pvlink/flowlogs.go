package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func newFlowLogsCmd() *cobra.Command {
	var follow bool
	var ids []string
	c := &cobra.Command{
		Use:   "flowlogs [FABRIC] [--once | --follow] [--flow-log-id fl-...]",
		Short: "Print the fabric's VPC Flow Logs records (version 2, default format)",
		Long: `flowlogs prints the records of the fabric's flow logs (made with aws ec2
create-flow-logs against the fabric's API), as AWS writes them: a line of field names,
then one record a line (version account-id interface-id srcaddr dstaddr srcport dstport
protocol packets bytes start end action log-status). --once (the default) prints what
is there; --follow keeps printing records as they are written, until Ctrl-C.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _, st, err := fabricStatus(cmd, "", args)
			if err != nil {
				return err
			}
			var files []string
			for _, f := range st.FlowLogs {
				if len(ids) > 0 && !slices.Contains(ids, f.ID) {
					continue
				}
				if !slices.Contains(files, f.Destination) {
					files = append(files, f.Destination)
				}
			}
			if len(files) == 0 {
				return fmt.Errorf("fabric %s has no flow logs%s (aws ec2 create-flow-logs makes one)", name, map[bool]string{true: " with those ids", false: ""}[len(ids) > 0])
			}
			return printFlowLogs(cmd, files, follow)
		},
	}
	c.Flags().BoolVar(&follow, "follow", false, "keep printing records as they are written")
	c.Flags().Bool("once", false, "print the records there are and stop (the default)")
	c.Flags().StringSliceVar(&ids, "flow-log-id", nil, "only these flow logs")
	c.MarkFlagsMutuallyExclusive("follow", "once")
	return c
}

// printFlowLogs prints each file's records after one header line, then,
// following, what is appended to them.
func printFlowLogs(cmd *cobra.Command, files []string, follow bool) error {
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, ctl.FlowLogHeader)
	open := make([]*os.File, len(files))
	pending := make([]string, len(files)) // a line not yet ended
	defer func() {
		for _, f := range open {
			if f != nil {
				f.Close()
			}
		}
	}()
	buf := make([]byte, 64<<10)
	copyRecords := func() error {
		for i, path := range files {
			if open[i] == nil {
				f, err := os.Open(path)
				if errors.Is(err, os.ErrNotExist) {
					continue // nothing recorded yet
				}
				if err != nil {
					return err
				}
				open[i] = f
			}
			for {
				n, err := open[i].Read(buf)
				text := pending[i] + string(buf[:n])
				end := strings.LastIndexByte(text, '\n')
				pending[i] = text[end+1:]
				for _, line := range strings.Split(text[:end+1], "\n") {
					if line != "" && line != ctl.FlowLogHeader {
						fmt.Fprintln(out, line)
					}
				}
				if err == io.EOF || n == 0 {
					break
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := copyRecords(); err != nil || !follow {
		return err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-cmd.Context().Done():
			return nil
		case <-t.C:
			if err := copyRecords(); err != nil {
				return err
			}
		}
	}
}
