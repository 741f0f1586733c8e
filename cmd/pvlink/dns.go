package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newDNSCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "dns",
		Short: "The fabric's public DNS: the zones providers control, where they prove they own a private DNS name",
	}
	var account, zone, name, typ, value string
	var wait time.Duration
	set := &cobra.Command{
		Use:   "set-record FABRIC --account ACCOUNT --zone ZONE --name NAME --type TXT|A|AAAA --value VALUE",
		Short: "Set a record of a public zone of the account's (an empty --value deletes it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, args[0])
			if err != nil {
				return err
			}
			a, err := c.SetPublicRecord(account, zone, name, typ, value)
			if err != nil {
				return err
			}
			return reportChange(cmd, c, a, wait, fmt.Sprintf("%s %s in %s", name, typ, zone))
		},
	}
	set.Flags().StringVar(&account, "account", "", "the account that owns the zone (name or id)")
	set.Flags().StringVar(&zone, "zone", "", "the zone (example.com)")
	set.Flags().StringVar(&name, "name", "", "the record's name")
	set.Flags().StringVar(&typ, "type", "TXT", "TXT, A or AAAA")
	set.Flags().StringVar(&value, "value", "", "the record's value")
	addWaitFlag(set, &wait)
	for _, f := range []string{"account", "zone", "name"} {
		set.MarkFlagRequired(f)
	}
	verify := &cobra.Command{
		Use:   "verify FABRIC SERVICE",
		Short: "Verify a service's private DNS name: look for its TXT record in the public DNS (as StartVpcEndpointServicePrivateDnsVerification)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, args[0])
			if err != nil {
				return err
			}
			a, err := c.VerifyPrivateDNS(args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service %s: %s\n", args[1], a.Message)
			return nil
		},
	}
	c.AddCommand(set, verify)
	return c
}
