package main

import (
	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func newFaultCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fault",
		Short: "Take an AZ down and bring it back, as an outage would (AWS Fault Injection Service)",
		Long: `fault black-holes what an outage of an Availability Zone takes away: the AZ's endpoint
network interfaces (every packet to or from them vanishes: no RST, no ICMP) and its
targets (connections to them and their health checks go unanswered, so nodes of other
AZs that send there with cross-zone load balancing find them unhealthy). DNS leaves the
AZ out of endpoints' regional names. The fault is kept in the fabric's model (fabric
status, the pvlink_fault_active metric) until az-up lifts it; fabric down removes
everything with a fault in force.`,
	}
	addVerbs(c, "AZ", "", []verb{
		{"az-down", "Take an AZ down: its ENIs and targets black-holed, its ENIs out of the regional DNS names"},
		{"az-up", "End an AZ's outage: everything as it was"},
	}, func(c *ctl.Client, verb, az string) (ctl.Answer, error) { return c.Fault(verb, az) }, "fault")
	addVerbs(c, "REGION", "", []verb{
		{"region-down", "Take a Region down: every AZ of it as az-down takes one; endpoints of other Regions that reach its services fail, with no failover to another Region"},
		{"region-up", "End a Region's outage"},
	}, func(c *ctl.Client, verb, region string) (ctl.Answer, error) { return c.Fault(verb, region) }, "fault")
	return c
}
