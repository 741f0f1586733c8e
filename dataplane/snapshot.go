package dataplane

import "pvlink.dev/pvlink/snapshot"

// The snapshot types live in the leaf package snapshot, so that ctld uses
// them without linking the data plane; these names keep the forwarder's
// code short.
type (
	Config       = snapshot.Config
	ENI          = snapshot.ENI
	SGRule       = snapshot.SGRule
	Listener     = snapshot.Listener
	LoadBalancer = snapshot.LoadBalancer
	TargetGroup  = snapshot.TargetGroup
	HealthCheck  = snapshot.HealthCheck
	Duration     = snapshot.Duration
	Target       = snapshot.Target
	Status       = snapshot.Status
	ApplyResult  = snapshot.ApplyResult
	ENICounters  = snapshot.ENICounters
	LBCounters   = snapshot.LBCounters
	Stats        = snapshot.Stats
	RuntimeStats = snapshot.RuntimeStats
	FlowInfo     = snapshot.FlowInfo
	TargetInfo   = snapshot.TargetInfo
)

const (
	MaxWorkers                   = snapshot.MaxWorkers
	StateAvailable               = snapshot.StateAvailable
	PlacementFirstAck            = snapshot.PlacementFirstAck
	PlacementFirstAckWithPayload = snapshot.PlacementFirstAckWithPayload
	TUNFlags                     = snapshot.TUNFlags
)

// LoadConfig reads a snapshot file written by ctld.
var LoadConfig = snapshot.LoadConfig
