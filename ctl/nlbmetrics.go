package ctl

import (
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl/cloudwatch"
	"pvlink.dev/pvlink/snapshot"
)

// TargetView is a target as the load balancer's nodes see it, all nodes
// together: the state DescribeTargetHealth gives and HealthyHostCount
// counts.
type TargetView struct {
	LoadBalancer, TargetGroup string
	Target                    string // IP:port
	AZ                        string // the target's
	State                     string
}

// targetRank orders states from the worst to the best: where nodes
// disagree, the best is the target's.
var targetRank = map[string]int{"unused": 0, "unhealthy": 1, "unhealthy.draining": 2, "initial": 3, "draining": 4, "healthy": 5}

// TargetRank is a state's place from the worst (unused) to the best
// (healthy).
func TargetRank(state string) int { return targetRank[state] }

// TargetViews reads every running forwarder's targets (GET /targets) and
// gives each target of each load balancer's group its best state over
// the nodes. A node of another AZ that does not check a target (cross-zone
// off: "initial" there for ever) says nothing of it.
func TargetViews(r *Report) ([]TargetView, error) {
	docs, err := ReadForwarders[[]snapshot.TargetInfo](r, "/targets")
	if err != nil {
		return nil, err
	}
	var out []TargetView
	index := map[string]int{}
	best := map[string]int{}
	for _, d := range docs {
		for _, t := range d.Doc {
			rank := targetRank[t.State]
			if t.State == "initial" && t.AZ != d.AZ {
				rank = -1
			}
			key := t.Group + "|" + t.Target
			i, ok := index[key]
			if !ok {
				lb, tg, _ := strings.Cut(t.Group, "/") // load balancer/target group
				index[key] = len(out)
				best[key] = rank
				out = append(out, TargetView{LoadBalancer: lb, TargetGroup: tg, Target: t.Target, AZ: t.AZ, State: t.State})
				continue
			}
			if rank > best[key] {
				out[i].State, best[key] = t.State, rank
			}
		}
	}
	return out, nil
}

// The load balancers' host counts, as CloudWatch's AWS/NetworkELB has
// them: by load balancer and target group, and by AZ too (the targets of
// that AZ).
var (
	nlbCombos  = [][]string{{"LoadBalancer", "TargetGroup"}, {"AvailabilityZone", "LoadBalancer", "TargetGroup"}}
	nlbMetrics = []metricDef{{"HealthyHostCount", "Count"}, {"UnHealthyHostCount", "Count"}}
)

// hostCounts publishes HealthyHostCount and UnHealthyHostCount of every
// load balancer's target groups whose health checks are on.
func (s *sampler) hostCounts(now time.Time, r *Report) {
	views, err := TargetViews(r)
	if err != nil || len(views) == 0 {
		return
	}
	lbs := map[string]LBState{}
	for _, lb := range r.LoadBalancers {
		lbs[lb.Name] = lb
	}
	tgs := map[string]TargetGroupState{}
	for _, tg := range r.TargetGroups {
		tgs[tg.Name] = tg
	}
	region := map[string]string{} // by VPC name
	for _, v := range r.VPCs {
		region[v.Name] = cmpOr(v.Region, r.Region)
	}
	rows := map[string]*row{}
	var order []string
	for _, v := range views {
		lb, okLB := lbs[v.LoadBalancer]
		tg, okTG := tgs[v.TargetGroup]
		if !okLB || !okTG || tg.HealthCheck.Disabled || v.State == "unused" || v.State == "draining" {
			continue
		}
		key := v.LoadBalancer + "/" + v.TargetGroup + "/" + v.AZ
		x := rows[key]
		if x == nil {
			x = &row{owner: lb.OwnerID, moved: true, values: map[string]float64{"HealthyHostCount": 0, "UnHealthyHostCount": 0}, dims: map[string]string{
				"LoadBalancer":     "net/" + lb.Name + "/" + lb.ID,
				"TargetGroup":      "targetgroup/" + tg.Name + "/" + tg.ID,
				"AvailabilityZone": ZoneName(region[lb.VPC], v.AZ),
			}}
			rows[key] = x
			order = append(order, key)
		}
		switch v.State {
		case "healthy":
			x.values["HealthyHostCount"]++
		case "unhealthy", "unhealthy.draining":
			x.values["UnHealthyHostCount"]++
		}
	}
	var list []*row
	for _, k := range order {
		list = append(list, rows[k])
	}
	s.publish(now, cloudwatch.NamespaceNLB, nlbCombos, nlbMetrics, list)
}

// The load balancers' traffic, as AWS/NetworkELB has it: by load balancer,
// and by the AZ of the node (the forwarder) that carried it. Every flow
// is TCP, so each metric's _TCP twin has the same value.
var (
	nlbTrafficCombos  = [][]string{{"LoadBalancer"}, {"AvailabilityZone", "LoadBalancer"}}
	nlbTrafficMetrics = []metricDef{
		{"ActiveFlowCount", "Count"}, {"ActiveFlowCount_TCP", "Count"},
		{"NewFlowCount", "Count"}, {"NewFlowCount_TCP", "Count"},
		{"ProcessedBytes", "Bytes"}, {"ProcessedBytes_TCP", "Bytes"},
		{"PortAllocationErrorCount", "Count"},
		{"TCP_Client_Reset_Count", "Count"}, {"TCP_Target_Reset_Count", "Count"}, {"TCP_ELB_Reset_Count", "Count"},
	}
)

// lbDeltas are one ENI's counters of one load balancer over a sample:
// its open flows now, and what the others grew by.
type lbDeltas struct {
	active, newConns, bytes, portErrors   float64
	clientResets, targetResets, elbResets float64
}

// nlbNodes sums the ENIs' counters by load balancer and node.
type nlbNodes struct {
	lbs    map[string]LBState
	region map[string]string // by VPC name
	rows   map[string]*row
	order  []string
}

func newNLBNodes(r *Report) *nlbNodes {
	n := &nlbNodes{lbs: map[string]LBState{}, region: map[string]string{}, rows: map[string]*row{}}
	for _, lb := range r.LoadBalancers {
		n.lbs[lb.Name] = lb
	}
	for _, v := range r.VPCs {
		n.region[v.Name] = cmpOr(v.Region, r.Region)
	}
	return n
}

// add counts d for load balancer name's node in az.
func (n *nlbNodes) add(az, name string, d lbDeltas) {
	lb, ok := n.lbs[name]
	if !ok {
		return // deleted since the forwarder counted
	}
	key := az + "/" + name
	x := n.rows[key]
	if x == nil {
		x = &row{owner: lb.OwnerID, values: map[string]float64{}, dims: map[string]string{
			"LoadBalancer":     "net/" + lb.Name + "/" + lb.ID,
			"AvailabilityZone": ZoneName(n.region[lb.VPC], az),
		}}
		n.rows[key] = x
		n.order = append(n.order, key)
	}
	for _, m := range []struct {
		names []string
		v     float64
	}{
		{[]string{"ActiveFlowCount", "ActiveFlowCount_TCP"}, d.active},
		{[]string{"NewFlowCount", "NewFlowCount_TCP"}, d.newConns},
		{[]string{"ProcessedBytes", "ProcessedBytes_TCP"}, d.bytes},
		{[]string{"PortAllocationErrorCount"}, d.portErrors},
		{[]string{"TCP_Client_Reset_Count"}, d.clientResets},
		{[]string{"TCP_Target_Reset_Count"}, d.targetResets},
		{[]string{"TCP_ELB_Reset_Count"}, d.elbResets},
	} {
		for _, name := range m.names {
			x.values[name] += m.v
		}
		x.moved = x.moved || m.v != 0
	}
}

// list gives the rows in the order they were first seen.
func (n *nlbNodes) list() []*row {
	out := make([]*row, 0, len(n.order))
	for _, k := range n.order {
		out = append(out, n.rows[k])
	}
	return out
}
