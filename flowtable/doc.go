// Package flowtable will hold the forwarder's table of flows (5-tuple ->
// flow record) with lock-free lookups and idle expiry. It imports the
// standard library only.
//
// Until it lands, the forwarder tracks open connections with per-ENI
// counters; see dataplane/forwarder.go.
package flowtable
