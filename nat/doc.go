// Package nat decides where a new flow goes, the way a Network Load
// Balancer node does: Maglev consistent hashing of the flow's 5-tuple over
// the eligible targets of a target group (healthy targets of the node's own
// Availability Zone, or of every zone with cross-zone load balancing; all of
// them when none is healthy: the NLB fails open), health checks with the
// NLB's thresholds, deregistration with draining, and the accounting of
// provider-side connections per (node IP, target IP:port), refused beyond
// the limit with PortAllocationErrorCount.
//
// Target choice takes no lock: the Maglev table in force is swapped whole
// by whoever changes the target set (health checker, new config), off the
// connection path. It imports flowtable only for the 5-tuple; it never
// dials anything itself: health checks call a function the forwarder gives.
package nat
