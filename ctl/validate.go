package ctl

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"pvlink.dev/pvlink/snapshot"
)

// validator checks a decoded topology against the rules of SPEC.md, fills in
// defaults (addresses, ports), and stops at the first fault with the line of
// the field at fault.
type validator struct {
	file string
	root *yaml.Node
	err  error

	subnets map[string]*subnetInfo // by subnet name
	vpcs    map[string]*VPC
	lbs     map[string]*LoadBalancer
	tgs     map[string]*TargetGroup
	svcs    map[string]*Service
	sgs     map[string]*SecurityGroup
	accts   map[string]*Account
	servers map[netip.AddrPort]*TargetGroup // target servers pvlink runs
	home    string                          // the home Region
	zoneOf  map[string]string               // each AZ's Region
}

type subnetInfo struct {
	s       *Subnet
	vpc     string
	prefix  netip.Prefix
	prefix6 netip.Prefix          // invalid when the subnet has no IPv6 block
	used    map[netip.Addr]string // address -> what holds it
	path    []any
}

var (
	nameRe      = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
	regionRe    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	accountIDRe = regexp.MustCompile(`^[0-9]{12}$`)
	accessKeyRe = regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`)
	lbNameRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)
	dnsNameRe   = regexp.MustCompile(`^([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	principalRe = regexp.MustCompile(`^arn:aws:iam::[0-9]{12}:(root|role/[\w+=,.@/-]{1,512}|user/[\w+=,.@/-]{1,512})$`)
)

// PrincipalAccount is the account id of a principal ARN.
func PrincipalAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// PrincipalAllowed reports whether an allowed-principals list lets
// principal create an endpoint: "*", the principal itself, or the root of
// its account (which stands for every principal of the account).
func PrincipalAllowed(allowed []string, principal string) bool {
	for _, a := range allowed {
		if a == "*" || a == principal || a == "arn:aws:iam::"+PrincipalAccount(principal)+":root" {
			return true
		}
	}
	return false
}

func (v *validator) fail(path []any, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = &TopologyError{File: v.file, Line: lineOf(v.root, path), Field: pathString(path), Msg: fmt.Sprintf(format, args...)}
}

func p(parts ...any) []any { return parts }

func (v *validator) name(path []any, name string) {
	if name == "" {
		v.fail(path, "is required")
	} else if !nameRe.MatchString(name) {
		v.fail(path, "%q is not a valid name (lower-case letters, digits and '-', starting with a letter, at most 20 characters)", name)
	}
}

func (v *validator) topology(t *Topology) {
	v.subnets = map[string]*subnetInfo{}
	v.vpcs = map[string]*VPC{}
	v.lbs = map[string]*LoadBalancer{}
	v.tgs = map[string]*TargetGroup{}
	v.svcs = map[string]*Service{}
	v.sgs = map[string]*SecurityGroup{}
	v.accts = map[string]*Account{}

	v.name(p("name"), t.Name)
	if len(t.Accounts) == 0 {
		t.Accounts = []Account{{Name: "default", ID: DefaultAccountID}}
	}
	ids := map[string]bool{}
	for i := range t.Accounts {
		a := &t.Accounts[i]
		define(v, p("accounts", i), "account", a.Name, a, v.accts)
		if !accountIDRe.MatchString(a.ID) {
			v.fail(p("accounts", i, "id"), "%q is not an AWS account id (12 digits)", a.ID)
		} else if ids[a.ID] {
			v.fail(p("accounts", i, "id"), "account id %s is given twice", a.ID)
		}
		ids[a.ID] = true
		if (a.AccessKeyID == "") != (a.SecretAccessKey == "") {
			v.fail(p("accounts", i, "access_key_id"), "give both access_key_id and secret_access_key, or neither (pvlink then makes them)")
		} else if a.AccessKeyID != "" && !accessKeyRe.MatchString(a.AccessKeyID) {
			v.fail(p("accounts", i, "access_key_id"), "%q is not an access key id (AKIA and 16 capital letters or digits)", a.AccessKeyID)
		} else if a.AccessKeyID != "" && ids[a.AccessKeyID] {
			v.fail(p("accounts", i, "access_key_id"), "access key %s is given twice", a.AccessKeyID)
		}
		ids[a.AccessKeyID] = true
	}
	if t.Region == "" {
		v.fail(p("region"), "is required (for example us-east-1)")
	}
	if len(t.Zones) == 0 {
		v.fail(p("availability_zones"), "at least one availability zone is required")
	}
	if t.ForwarderWorkers < 0 || t.ForwarderWorkers > snapshot.MaxWorkers {
		v.fail(p("forwarder_workers"), "%d: use 1 to %d forwarder processes per AZ", t.ForwarderWorkers, snapshot.MaxWorkers)
	}
	if t.API.RequestsPerSecond < 0 || t.API.Burst < 0 {
		v.fail(p("api"), "requests_per_second and burst must not be negative")
	}
	if t.API.RequestsPerSecond == 0 {
		t.API.RequestsPerSecond = 20
	}
	if t.API.Burst == 0 {
		t.API.Burst = 50
	}
	if t.FlowCapacity != 0 && (t.FlowCapacity < 1024 || t.FlowCapacity > 1<<24) {
		v.fail(p("flow_capacity"), "%d: use 1024 to %d flows per forwarder", t.FlowCapacity, 1<<24)
	}
	zones := map[string]bool{}
	named := map[string]string{} // Region and AZ name: the id
	v.home, v.zoneOf = t.Region, map[string]string{}
	addZone := func(path []any, region, z string) {
		v.name(path, z)
		if zones[z] {
			v.fail(path, "zone %s is listed twice (an AZ id belongs to one Region)", z)
		}
		zones[z] = true
		v.zoneOf[z] = region
		name := ZoneName(region, z)
		if other, ok := named[region+" "+name]; ok && other != z {
			v.fail(path, "zones %s and %s would both be named %s in the AWS API (an id ending in -azN is named after its Region and N as a letter)", other, z, name)
		}
		named[region+" "+name] = z
	}
	for i, z := range t.Zones {
		addZone(p("availability_zones", i), t.Region, z)
	}
	regions := map[string]bool{t.Region: true}
	for i, r := range t.Regions {
		if !regionRe.MatchString(r.Name) {
			v.fail(p("regions", i, "name"), "%q is not a Region name (for example us-west-2)", r.Name)
		}
		if regions[r.Name] {
			v.fail(p("regions", i, "name"), "Region %s is listed twice (the home Region is region)", r.Name)
		}
		regions[r.Name] = true
		if len(r.Zones) == 0 {
			v.fail(p("regions", i, "availability_zones"), "at least one availability zone is required")
		}
		for j, z := range r.Zones {
			addZone(p("regions", i, "availability_zones", j), r.Name, z)
		}
	}
	for i, a := range t.Accounts {
		for j, r := range a.OptedInRegions {
			if !regions[r] {
				v.fail(p("accounts", i, "opted_in_regions", j), "Region %q is not the fabric's", r)
			}
		}
		for j, st := range a.IAMPolicy {
			if err := checkStatement(st); err != nil {
				v.fail(p("accounts", i, "iam_policy", j), "%v", err)
			}
		}
	}
	// No VPC is fine: an empty fabric, built through the API.
	for i := range t.VPCs {
		v.vpc(p("vpcs", i), &t.VPCs[i], zones, t.Accounts)
	}
	for i := range t.TargetGroups {
		v.targetGroup(p("target_groups", i), &t.TargetGroups[i])
	}
	for i := range t.LoadBalancers {
		v.loadBalancer(p("load_balancers", i), &t.LoadBalancers[i])
	}
	for i := range t.Services {
		v.service(p("endpoint_services", i), &t.Services[i])
	}
	for i := range t.SecurityGroups {
		v.securityGroup(p("security_groups", i), &t.SecurityGroups[i])
	}
	for i := range t.LoadBalancers {
		v.loadBalancerSecurityGroups(p("load_balancers", i), &t.LoadBalancers[i])
	}
	for i := range t.Endpoints {
		v.endpoint(p("endpoints", i), &t.Endpoints[i])
	}
	for i := range t.PublicDNSZones {
		z := &t.PublicDNSZones[i]
		zone := strings.TrimSuffix(strings.ToLower(z.Name), ".")
		if !dnsNameRe.MatchString(zone) {
			v.fail(p("public_dns_zones", i, "name"), "%q is not a zone name", z.Name)
		}
		if z.Account == "" {
			z.Account = t.Accounts[0].Name
		} else if v.accts[z.Account] == nil {
			v.fail(p("public_dns_zones", i, "account"), "account %q is not defined", z.Account)
		}
		for j := range z.Records {
			r := &z.Records[j]
			r.Name = strings.TrimSuffix(strings.ToLower(r.Name), ".")
			if r.Name != zone && !strings.HasSuffix(r.Name, "."+zone) {
				v.fail(p("public_dns_zones", i, "records", j, "name"), "%s is not in zone %s", r.Name, zone)
			}
			if r.Type != "A" && r.Type != "AAAA" && r.Type != "TXT" {
				v.fail(p("public_dns_zones", i, "records", j, "type"), "%q: public zones hold A, AAAA and TXT records", r.Type)
			}
		}
	}
	for i := range t.SNSTopics {
		tp := &t.SNSTopics[i]
		if tp.Name == "" {
			v.fail(p("sns_topics", i, "name"), "is required")
		}
		if tp.Account == "" {
			tp.Account = t.Accounts[0].Name
		} else if v.accts[tp.Account] == nil {
			v.fail(p("sns_topics", i, "account"), "account %q is not defined", tp.Account)
		}
		for j, sub := range tp.Subscribers {
			if err := CheckSubscriber(sub); err != nil {
				v.fail(p("sns_topics", i, "subscribers", j), "%s", err)
			}
		}
	}
	if v.err != nil {
		return
	}
	// Defaults are allocated only after every explicit address is known, so a
	// default can never take an address the file names later.
	for i := range t.VPCs {
		for j := range t.VPCs[i].Subnets {
			s := &t.VPCs[i].Subnets[j]
			if s.HostIP == "" {
				s.HostIP = v.allocate(p("vpcs", i, "subnets", j), s.Name, "host of subnet "+s.Name, false)
			}
			if s.HostIPv6 == "" && s.IPv6CIDR != "" {
				s.HostIPv6 = v.allocate(p("vpcs", i, "subnets", j), s.Name, "host of subnet "+s.Name, true)
			}
		}
	}
	for i := range t.LoadBalancers {
		for j := range t.LoadBalancers[i].SubnetMappings {
			m := &t.LoadBalancers[i].SubnetMappings[j]
			if m.PrivateIPv4Address == "" {
				m.PrivateIPv4Address = v.allocate(p("load_balancers", i, "subnet_mappings", j), m.Subnet, "node of load balancer "+t.LoadBalancers[i].Name, false)
			}
		}
	}
	for i := range t.Endpoints {
		for j := range t.Endpoints[i].SubnetConfigurations {
			c := &t.Endpoints[i].SubnetConfigurations[j]
			typ := t.Endpoints[i].IPAddressType
			cp := p("endpoints", i, "subnet_configurations", j)
			if c.IPv4 == "" && typ != "ipv6" {
				c.IPv4 = v.allocate(cp, c.Subnet, "ENI of endpoint "+t.Endpoints[i].Name, false)
			}
			if c.IPv6 == "" && typ != "ipv4" {
				c.IPv6 = v.allocate(cp, c.Subnet, "ENI of endpoint "+t.Endpoints[i].Name, true)
			}
		}
	}
}

// define checks that an item's name is valid and the first of its kind,
// and records the item under it.
func define[T any](v *validator, path []any, kind, name string, item *T, seen map[string]*T) {
	v.name(append(path, "name"), name)
	if seen[name] != nil {
		v.fail(append(path, "name"), "%s %s is defined twice", kind, name)
	}
	seen[name] = item
}

// vpcDefined checks the item's vpc field names a VPC of the topology.
func (v *validator) vpcDefined(path []any, vpc string) bool {
	if v.vpcs[vpc] == nil {
		v.fail(append(path, "vpc"), "VPC %q is not defined", vpc)
		return false
	}
	return true
}

func (v *validator) vpc(path []any, vpc *VPC, zones map[string]bool, accounts []Account) {
	define(v, path, "VPC", vpc.Name, vpc, v.vpcs)
	v.checkVPCDNS(path, vpc)
	if vpc.Region == "" {
		vpc.Region = v.home
	} else if !slices.Contains(slices.Collect(maps.Values(v.zoneOf)), vpc.Region) {
		v.fail(append(path, "region"), "Region %q is not the fabric's (region, or one of regions)", vpc.Region)
	}
	if vpc.Account == "" {
		vpc.Account = accounts[0].Name
	} else if v.accts[vpc.Account] == nil {
		v.fail(append(path, "account"), "account %q is not defined", vpc.Account)
	}
	cidr, err := netip.ParsePrefix(vpc.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		v.fail(append(path, "cidr"), "%q is not an IPv4 CIDR block", vpc.CIDR)
		return
	}
	if cidr.Masked() != cidr {
		v.fail(append(path, "cidr"), "%s has host bits set (did you mean %s?)", vpc.CIDR, cidr.Masked())
	}
	if cidr.Bits() < 16 || cidr.Bits() > 28 {
		v.fail(append(path, "cidr"), "a VPC CIDR block must be between /16 and /28, got /%d", cidr.Bits())
	}
	var cidr6 netip.Prefix
	if vpc.IPv6CIDR != "" {
		cidr6, err = netip.ParsePrefix(vpc.IPv6CIDR)
		if err != nil || !cidr6.Addr().Is6() || cidr6.Addr().Is4In6() {
			v.fail(append(path, "ipv6_cidr"), "%q is not an IPv6 CIDR block", vpc.IPv6CIDR)
			return
		}
		if cidr6.Masked() != cidr6 || cidr6.Bits() > 64 {
			v.fail(append(path, "ipv6_cidr"), "%s must be a network of /64 or larger (AWS gives VPCs a /56)", vpc.IPv6CIDR)
		}
	}
	if len(vpc.Subnets) == 0 {
		v.fail(append(path, "subnets"), "at least one subnet is required")
	}
	for j := range vpc.Subnets {
		s := &vpc.Subnets[j]
		sp := append(append([]any{}, path...), "subnets", j)
		v.name(append(sp, "name"), s.Name)
		if v.subnets[s.Name] != nil {
			v.fail(append(sp, "name"), "subnet %s is defined twice", s.Name)
		}
		if r, ok := v.zoneOf[s.AZ]; !ok {
			v.fail(append(sp, "availability_zone"), "%q is not one of availability_zones", s.AZ)
		} else if r != vpc.Region {
			v.fail(append(sp, "availability_zone"), "%s is in Region %s, the VPC in %s", s.AZ, r, vpc.Region)
		}
		pfx, err := netip.ParsePrefix(s.CIDR)
		if err != nil || !pfx.Addr().Is4() {
			v.fail(append(sp, "cidr"), "%q is not an IPv4 CIDR block", s.CIDR)
			return
		}
		if pfx.Masked() != pfx {
			v.fail(append(sp, "cidr"), "%s has host bits set (did you mean %s?)", s.CIDR, pfx.Masked())
		}
		if pfx.Bits() < cidr.Bits() || !cidr.Contains(pfx.Addr()) {
			v.fail(append(sp, "cidr"), "%s is not inside the VPC's %s", s.CIDR, vpc.CIDR)
		}
		if pfx.Bits() > 28 {
			v.fail(append(sp, "cidr"), "a subnet must be /28 or larger, got /%d", pfx.Bits())
		}
		for _, o := range v.subnets {
			if o.vpc == vpc.Name && o.prefix.Overlaps(pfx) {
				v.fail(append(sp, "cidr"), "%s overlaps subnet %s (%s)", s.CIDR, o.s.Name, o.s.CIDR)
			}
		}
		info := &subnetInfo{s: s, vpc: vpc.Name, prefix: pfx, used: map[netip.Addr]string{}, path: sp}
		if s.IPv6CIDR != "" {
			p6, err := netip.ParsePrefix(s.IPv6CIDR)
			switch {
			case !cidr6.IsValid():
				v.fail(append(sp, "ipv6_cidr"), "the VPC has no ipv6_cidr")
			case err != nil || !p6.Addr().Is6() || p6.Masked() != p6:
				v.fail(append(sp, "ipv6_cidr"), "%q is not an IPv6 CIDR block", s.IPv6CIDR)
			case p6.Bits() != 64:
				v.fail(append(sp, "ipv6_cidr"), "an IPv6 subnet is a /64, got /%d", p6.Bits())
			case !cidr6.Contains(p6.Addr()):
				v.fail(append(sp, "ipv6_cidr"), "%s is not inside the VPC's %s", s.IPv6CIDR, vpc.IPv6CIDR)
			default:
				for _, o := range v.subnets {
					if o.vpc == vpc.Name && o.prefix6.IsValid() && o.prefix6 == p6 {
						v.fail(append(sp, "ipv6_cidr"), "%s is also subnet %s's", s.IPv6CIDR, o.s.Name)
					}
				}
				info.prefix6 = p6
			}
		}
		v.subnets[s.Name] = info
		if s.HostIP != "" {
			v.claim(append(sp, "host_ip"), s.Name, s.HostIP, "host of subnet "+s.Name)
		}
		if s.HostIPv6 != "" {
			v.claim(append(sp, "host_ipv6"), s.Name, s.HostIPv6, "host of subnet "+s.Name)
		}
	}
}

// claim reserves an explicit address in a subnet, refusing reserved and
// already used ones.
func (v *validator) claim(path []any, subnet, addr, holder string) {
	info := v.subnets[subnet]
	if info == nil {
		return
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		v.fail(path, "%q is not an IP address", addr)
		return
	}
	pfx, cidr := info.prefix, info.s.CIDR
	if a.Is6() {
		if !info.prefix6.IsValid() {
			v.fail(path, "%s is IPv6 but subnet %s has no ipv6_cidr", addr, subnet)
			return
		}
		pfx, cidr = info.prefix6, info.s.IPv6CIDR
	}
	if !pfx.Contains(a) {
		v.fail(path, "%s is not inside subnet %s (%s)", addr, subnet, cidr)
		return
	}
	if reserved(pfx, a) {
		v.fail(path, "%s is reserved: AWS keeps the first four and the last address of every subnet", addr)
		return
	}
	if other, ok := info.used[a]; ok {
		v.fail(path, "address clash: %s is already used by the %s", addr, other)
		return
	}
	info.used[a] = holder
}

// allocate picks the lowest free, non-reserved address of a subnet, from
// its IPv6 block with v6.
func (v *validator) allocate(path []any, subnet, holder string, v6 bool) string {
	info := v.subnets[subnet]
	if info == nil {
		return ""
	}
	pfx := info.prefix
	if v6 {
		if pfx = info.prefix6; !pfx.IsValid() {
			v.fail(path, "subnet %s has no ipv6_cidr for an IPv6 address", subnet)
			return ""
		}
	}
	for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
		if reserved(pfx, a) {
			continue
		}
		if _, ok := info.used[a]; !ok {
			info.used[a] = holder
			return a.String()
		}
	}
	v.fail(path, "subnet %s (%s) has no free address left", subnet, info.s.CIDR)
	return ""
}

// reserved: AWS keeps the first four addresses and the last of a subnet.
func reserved(pfx netip.Prefix, a netip.Addr) bool {
	first := pfx.Masked().Addr()
	for i := 0; i < 4; i++ {
		if a == first {
			return true
		}
		first = first.Next()
	}
	last := pfx.Masked().Addr().AsSlice()
	for i := pfx.Bits(); i < len(last)*8; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	l, _ := netip.AddrFromSlice(last)
	return a == l
}

func (v *validator) targetGroup(path []any, tg *TargetGroup) {
	define(v, path, "target group", tg.Name, tg, v.tgs)
	if !v.vpcDefined(path, tg.VPC) {
		return
	}
	switch tg.Protocol {
	case "", "TCP":
		tg.Protocol = "TCP"
	case "UDP", "TCP_UDP":
		v.fail(append(path, "protocol"), "%s target groups cannot be used: PrivateLink does not support UDP", tg.Protocol)
	default:
		v.fail(append(path, "protocol"), "%q is not supported (TCP is)", tg.Protocol)
	}
	if tg.Port < 1 || tg.Port > 65535 {
		v.fail(append(path, "port"), "%d is not a TCP port (1-65535)", tg.Port)
	}
	switch tg.ProxyProtocolV2Placement {
	case "":
		tg.ProxyProtocolV2Placement = snapshot.PlacementFirstAckWithPayload
	case snapshot.PlacementFirstAckWithPayload, snapshot.PlacementFirstAck:
	default:
		v.fail(append(path, "proxy_protocol_v2_header_placement"), "%q is not one of %s, %s", tg.ProxyProtocolV2Placement, snapshot.PlacementFirstAckWithPayload, snapshot.PlacementFirstAck)
	}
	between := func(path []any, d, lo, hi time.Duration, aws string) {
		if d != 0 && (d < lo || d > hi) {
			v.fail(path, "%s is outside %s-%s (%s)", d, lo, hi, aws)
		}
	}
	between(append(path, "idle_timeout"), tg.IdleTimeout, time.Second, 6000*time.Second, "AWS allows 60s-6000s; pvlink from 1s for tests")
	if d := tg.DeregistrationDelay; d != nil {
		between(append(path, "deregistration_delay"), *d, 0, 3600*time.Second, "AWS allows 0-3600s")
		if *d < 0 {
			v.fail(append(path, "deregistration_delay"), "must not be negative")
		}
	}
	between(append(path, "unhealthy_draining_interval"), tg.UnhealthyDrainingInterval, 0, 360000*time.Second, "AWS allows 0-360000s")
	if tg.MinHealthyTargets < 0 {
		v.fail(append(path, "unhealthy_state_routing_min_healthy_targets"), "%d is not a number of targets (1 or more)", tg.MinHealthyTargets)
	}
	if tg.MinHealthyPercentage < 0 || tg.MinHealthyPercentage > 100 {
		v.fail(append(path, "unhealthy_state_routing_min_healthy_percentage"), "%d is not a percentage (1-100)", tg.MinHealthyPercentage)
	}
	if tg.UnhealthyDrainingInterval != 0 && (tg.UnhealthyConnectionTermination == nil || *tg.UnhealthyConnectionTermination) {
		v.fail(append(path, "unhealthy_draining_interval"), "applies only with unhealthy_connection_termination: false")
	}
	if hc := tg.HealthCheck; hc != nil {
		hp := append(append([]any{}, path...), "health_check")
		between(append(hp, "interval"), hc.Interval, 50*time.Millisecond, 300*time.Second, "AWS allows 5s-300s; pvlink from 50ms for tests")
		between(append(hp, "timeout"), hc.Timeout, 10*time.Millisecond, 120*time.Second, "AWS allows 2s-120s; pvlink from 10ms for tests")
		for field, n := range map[string]int{"healthy_threshold": hc.HealthyThreshold, "unhealthy_threshold": hc.UnhealthyThreshold} {
			if n != 0 && (n < 2 || n > 10) {
				v.fail(append(hp, field), "%d is outside 2-10", n)
			}
		}
		if hc.Port < 0 || hc.Port > 65535 {
			v.fail(append(hp, "port"), "%d is not a TCP port (1-65535; left out, the traffic port)", hc.Port)
		}
		probe := snapshot.HealthCheck{Protocol: hc.Protocol, Path: hc.Path, Matcher: hc.Matcher}
		if err := settleHealthCheck(&probe); err != nil {
			v.fail(hp, "%v", err)
		}
	}
	if tg.ConnectionLimit < 0 || tg.ConnectionLimit > 65535 {
		v.fail(append(path, "connection_limit"), "%d is outside 1-65535 (a node has at most 64k source ports per target)", tg.ConnectionLimit)
	}
	if len(tg.Targets) == 0 {
		v.fail(append(path, "targets"), "at least one target is required")
	}
	seen := map[netip.AddrPort]bool{}
	if v.servers == nil {
		v.servers = map[netip.AddrPort]*TargetGroup{}
	}
	for k := range tg.Targets {
		t := &tg.Targets[k]
		tp := append(append([]any{}, path...), "targets", k)
		a, err := netip.ParseAddr(t.IP)
		if err != nil || !a.Is4() {
			v.fail(append(tp, "ip"), "%q is not an IPv4 address", t.IP)
			return
		}
		if t.Port == 0 {
			t.Port = tg.Port
		}
		if t.Port < 1 || t.Port > 65535 {
			v.fail(append(tp, "port"), "%d is not a TCP port (1-65535)", t.Port)
		}
		ap := netip.AddrPortFrom(a, uint16(t.Port))
		if seen[ap] {
			v.fail(tp, "target %s is registered twice", ap)
		}
		seen[ap] = true
		if other := v.servers[ap]; other != nil && !t.External && other.ProxyProtocolV2 != tg.ProxyProtocolV2 {
			v.fail(tp, "target %s is also in target group %s, which differs on proxy_protocol_v2; pvlink runs one server per address: make them agree or mark the target external", ap, other.Name)
		}
		if !t.External {
			v.servers[ap] = tg
		}
		sn := v.subnetOf(tg.VPC, a)
		if sn == "" {
			v.fail(append(tp, "ip"), "%s is not inside any subnet of VPC %s", t.IP, tg.VPC)
			return
		}
		info := v.subnets[sn]
		if reserved(info.prefix, a) {
			v.fail(append(tp, "ip"), "%s is reserved: AWS keeps the first four and the last address of every subnet", t.IP)
		}
		// Several target groups (or ports) may share one target IP.
		if holder, ok := info.used[a]; ok && holder != "target" {
			v.fail(append(tp, "ip"), "address clash: %s is already used by the %s", t.IP, holder)
		}
		info.used[a] = "target"
	}
}

func (v *validator) subnetOf(vpc string, a netip.Addr) string {
	for name, info := range v.subnets {
		if info.vpc == vpc && info.prefix.Contains(a) {
			return name
		}
	}
	return ""
}

func (v *validator) loadBalancer(path []any, lb *LoadBalancer) {
	define(v, path, "load balancer", lb.Name, lb, v.lbs)
	switch lb.IPAddressType {
	case "":
		lb.IPAddressType = "ipv4"
	case "ipv4", "dualstack":
	default:
		v.fail(append(path, "ip_address_type"), "%q is not ipv4 or dualstack", lb.IPAddressType)
	}
	if !v.vpcDefined(path, lb.VPC) {
		return
	}
	if len(lb.SubnetMappings) == 0 {
		v.fail(append(path, "subnet_mappings"), "at least one subnet is required")
	}
	azs := map[string]bool{}
	for j := range lb.SubnetMappings {
		m := &lb.SubnetMappings[j]
		mp := append(append([]any{}, path...), "subnet_mappings", j)
		info := v.subnets[m.Subnet]
		if info == nil || info.vpc != lb.VPC {
			v.fail(append(mp, "subnet"), "%q is not a subnet of VPC %s", m.Subnet, lb.VPC)
			return
		}
		if azs[info.s.AZ] {
			v.fail(append(mp, "subnet"), "a load balancer takes one subnet per availability zone; %s is already used", info.s.AZ)
		}
		azs[info.s.AZ] = true
		if m.PrivateIPv4Address != "" {
			v.claim(append(mp, "private_ipv4_address"), m.Subnet, m.PrivateIPv4Address, "node of load balancer "+lb.Name)
		}
	}
	if len(lb.Listeners) == 0 {
		v.fail(append(path, "listeners"), "at least one listener is required")
	}
	ports := map[int]bool{}
	for j, l := range lb.Listeners {
		lp := append(append([]any{}, path...), "listeners", j)
		switch l.Protocol {
		case "", "TCP":
			lb.Listeners[j].Protocol = "TCP"
		default:
			if err := listenerProtocol(l.Protocol); err != nil {
				v.fail(append(lp, "protocol"), "%v", err)
			}
		}
		if l.Port < 1 || l.Port > 65535 {
			v.fail(append(lp, "port"), "%d is not a TCP port (1-65535)", l.Port)
		}
		if ports[l.Port] {
			v.fail(append(lp, "port"), "port %d already has a listener", l.Port)
		}
		ports[l.Port] = true
		if d := l.IdleTimeout; d != 0 && (d < time.Second || d > 6000*time.Second) {
			v.fail(append(lp, "idle_timeout"), "%s is outside 1s-6000s (AWS allows 60s-6000s; pvlink from 1s for tests)", d)
		}
		tg := v.tgs[l.TargetGroup]
		if tg == nil {
			v.fail(append(lp, "target_group"), "target group %q is not defined", l.TargetGroup)
		} else if tg.VPC != lb.VPC {
			v.fail(append(lp, "target_group"), "target group %s is in VPC %s, the load balancer in %s", tg.Name, tg.VPC, lb.VPC)
		}
	}
}

func (v *validator) service(path []any, s *Service) {
	define(v, path, "endpoint service", s.Name, s, v.svcs)
	if len(s.LoadBalancers) == 0 {
		v.fail(append(path, "load_balancers"), "an endpoint service needs at least one Network Load Balancer")
	}
	for j, name := range s.LoadBalancers {
		if v.lbs[name] == nil {
			v.fail(append(path, "load_balancers", j), "load balancer %q is not defined", name)
		}
	}
	for j, pr := range s.AllowedPrincipals {
		if pr != "*" && !principalRe.MatchString(pr) {
			v.fail(append(path, "allowed_principals", j), "%q is not a principal ARN (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME) or *", pr)
		}
	}
	if len(s.SupportedIPAddressTypes) == 0 {
		s.SupportedIPAddressTypes = []string{"ipv4"}
	}
	host := v.serviceRegion(s)
	for j, r := range s.SupportedRegions {
		switch {
		case !slices.Contains(slices.Collect(maps.Values(v.zoneOf)), r):
			v.fail(append(path, "supported_regions", j), "Region %q is not the fabric's", r)
		case r == host:
			// The host Region is always supported; naming it is allowed.
		default:
			for _, name := range s.LoadBalancers {
				if tg := v.customIdleTimeout(name); tg != "" {
					v.fail(append(path, "supported_regions", j), "cross-Region access is not supported for a Network Load Balancer with a custom TCP idle timeout (%s's %s)", name, tg)
				}
			}
		}
	}
	if s.PrivateDNSName != "" {
		n := strings.TrimSuffix(strings.ToLower(s.PrivateDNSName), ".")
		if !dnsNameRe.MatchString(n) || strings.HasSuffix(n, "amazonaws.com") {
			v.fail(append(path, "private_dns_name"), "%q is not a DNS name a provider may own", s.PrivateDNSName)
		}
	}
	for j, typ := range s.SupportedIPAddressTypes {
		if typ != "ipv4" && typ != "ipv6" {
			v.fail(append(path, "supported_ip_address_types", j), "%q is not ipv4 or ipv6", typ)
		}
		if typ == "ipv6" {
			for _, name := range s.LoadBalancers {
				if lb := v.lbs[name]; lb != nil && lb.IPAddressType != "dualstack" {
					v.fail(append(path, "supported_ip_address_types", j), "a service supports IPv6 only if its load balancers are dualstack; %s is %s", name, lb.IPAddressType)
				}
			}
		}
	}
}

func (v *validator) securityGroup(path []any, sg *SecurityGroup) {
	define(v, path, "security group", sg.Name, sg, v.sgs)
	if sg.Name == defaultGroupName {
		v.fail(append(append([]any{}, path...), "name"), "%q is the name of every VPC's default group, made with the VPC: name yours otherwise (the default group may be named in security_groups)", sg.Name)
	}
	v.vpcDefined(path, sg.VPC)
	for j := range sg.Ingress {
		v.sgRule(append(append([]any{}, path...), "ingress", j), &sg.Ingress[j])
	}
	if sg.Egress != nil {
		for j := range *sg.Egress {
			v.sgRule(append(append([]any{}, path...), "egress", j), &(*sg.Egress)[j])
		}
	}
}

// sgRule checks one rule of a security group (inbound or outbound) and
// writes its protocol as the plan reads it.
func (v *validator) sgRule(rp []any, r *SGRule) {
	switch strings.ToLower(r.IPProtocol) {
	case "tcp", "6":
		r.IPProtocol = "tcp"
		if r.FromPort < 0 || r.FromPort > 65535 || r.ToPort < r.FromPort || r.ToPort > 65535 {
			v.fail(append(rp, "from_port"), "port range %d-%d is not within 0-65535", r.FromPort, r.ToPort)
		}
	case "-1", "all":
		r.IPProtocol, r.FromPort, r.ToPort = "-1", 0, 65535
	case "udp", "icmp", "icmpv6", "17", "1", "58":
		// Allowed by EC2, but nothing but TCP reaches an endpoint.
	default:
		v.fail(append(rp, "ip_protocol"), "%q is not tcp, udp, icmp, icmpv6 or -1", r.IPProtocol)
	}
	if (r.CIDRIPv4 == "") == (r.CIDRIPv6 == "") {
		v.fail(rp, "a rule needs exactly one of cidr_ipv4 and cidr_ipv6")
	}
	if r.CIDRIPv4 != "" {
		if p, err := netip.ParsePrefix(r.CIDRIPv4); err != nil || !p.Addr().Is4() {
			v.fail(append(rp, "cidr_ipv4"), "%q is not an IPv4 CIDR block", r.CIDRIPv4)
		}
	}
	if r.CIDRIPv6 != "" {
		if p, err := netip.ParsePrefix(r.CIDRIPv6); err != nil || !p.Addr().Is6() {
			v.fail(append(rp, "cidr_ipv6"), "%q is not an IPv6 CIDR block", r.CIDRIPv6)
		}
	}
}

// serviceRegion is a service's host Region: its load balancers' VPC's.
func (v *validator) serviceRegion(s *Service) string {
	for _, name := range s.LoadBalancers {
		if lb := v.lbs[name]; lb != nil {
			if vpc := v.vpcs[lb.VPC]; vpc != nil {
				return vpc.Region
			}
		}
	}
	return v.home
}

// customIdleTimeout names a listener of a load balancer (by its port) or
// its target group whose idle timeout is not the NLB default (350 s), or "".
func (v *validator) customIdleTimeout(lbName string) string {
	lb := v.lbs[lbName]
	if lb == nil {
		return ""
	}
	for _, l := range lb.Listeners {
		if custom(l.IdleTimeout) {
			return fmt.Sprintf("listener %d", l.Port)
		}
		if tg := v.tgs[l.TargetGroup]; tg != nil && custom(tg.IdleTimeout) {
			return "target group " + tg.Name
		}
	}
	return ""
}

func (v *validator) endpoint(path []any, e *Endpoint) {
	v.name(append(path, "name"), e.Name)
	if !v.vpcDefined(path, e.VPC) {
		return
	}
	svc := v.svcs[e.Service]
	if svc == nil {
		v.fail(append(path, "service"), "endpoint service %q is not defined", e.Service)
		return
	}
	acct := v.accts[v.vpcs[e.VPC].Account]
	if e.Principal == "" && acct != nil {
		e.Principal = "arn:aws:iam::" + acct.ID + ":root"
	}
	if !principalRe.MatchString(e.Principal) {
		v.fail(append(path, "principal"), "%q is not a principal ARN (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME)", e.Principal)
	} else if acct != nil && PrincipalAccount(e.Principal) != acct.ID {
		v.fail(append(path, "principal"), "%s is not in account %s (%s), which owns VPC %s", e.Principal, acct.Name, acct.ID, e.VPC)
	}
	if e.PrivateDNSEnabled && svc.PrivateDNSName == "" {
		v.fail(append(path, "private_dns_enabled"), "service %s has no private_dns_name", svc.Name)
	}
	if why := privateDNSVPCFailure(v.vpcs[e.VPC]); e.PrivateDNSEnabled && why != "" {
		v.fail(append(path, "private_dns_enabled"), "%s", why)
	}
	switch e.IPAddressType {
	case "":
		e.IPAddressType = "ipv4"
	case "ipv4", "ipv6", "dualstack":
	default:
		v.fail(append(path, "ip_address_type"), "%q is not one of ipv4, ipv6, dualstack", e.IPAddressType)
	}
	if e.IPAddressType != "ipv4" && !slices.Contains(svc.SupportedIPAddressTypes, "ipv6") {
		v.fail(append(path, "ip_address_type"), "service %s does not support IPv6 (its supported_ip_address_types: %v)", svc.Name, svc.SupportedIPAddressTypes)
	}
	v.securityGroupsIn(path, e.SecurityGroups, e.VPC, "the endpoint")
	region, host := v.vpcs[e.VPC].Region, v.serviceRegion(svc)
	cross := region != host
	switch {
	case e.ServiceRegion != "" && e.ServiceRegion != host:
		v.fail(append(path, "service_region"), "service %s is hosted in %s, not %s", svc.Name, host, e.ServiceRegion)
	case cross && e.ServiceRegion == "":
		v.fail(append(path, "service_region"), "service %s is hosted in %s and the endpoint's VPC is in %s: give service_region: %s (cross-Region access)", svc.Name, host, region, host)
	}
	// Whether the service supports the endpoint's Region is checked when
	// the endpoint is created (ApplyTopology): a Region removed later
	// leaves existing endpoints working.
	if e.ServiceRegion == "" {
		e.ServiceRegion = host
	}
	serviceAZs := map[string]bool{}
	for _, name := range svc.LoadBalancers {
		if lb := v.lbs[name]; lb != nil {
			for _, m := range lb.SubnetMappings {
				if info := v.subnets[m.Subnet]; info != nil {
					serviceAZs[info.s.AZ] = true
				}
			}
		}
	}
	if len(e.SubnetConfigurations) == 0 {
		v.fail(append(path, "subnet_configurations"), "at least one subnet is required")
	}
	azs := map[string]bool{}
	for j := range e.SubnetConfigurations {
		c := &e.SubnetConfigurations[j]
		cp := append(append([]any{}, path...), "subnet_configurations", j)
		info := v.subnets[c.Subnet]
		if info == nil || info.vpc != e.VPC {
			v.fail(append(cp, "subnet"), "%q is not a subnet of VPC %s", c.Subnet, e.VPC)
			return
		}
		if azs[info.s.AZ] {
			v.fail(append(cp, "subnet"), "an endpoint takes one subnet per availability zone; %s is already used", info.s.AZ)
		}
		azs[info.s.AZ] = true
		if !cross && !serviceAZs[info.s.AZ] {
			v.fail(append(cp, "subnet"), "service %s is not available in %s (its load balancers have no node there)", svc.Name, info.s.AZ)
		}
		if c.IPv4 != "" {
			if e.IPAddressType == "ipv6" {
				v.fail(append(cp, "ipv4"), "an ipv6 endpoint's ENIs have no IPv4 address")
			}
			v.claim(append(cp, "ipv4"), c.Subnet, c.IPv4, "ENI of endpoint "+e.Name)
		}
		if e.IPAddressType != "ipv4" && !info.prefix6.IsValid() {
			v.fail(append(cp, "subnet"), "a %s endpoint needs subnets with an ipv6_cidr; %s has none", e.IPAddressType, c.Subnet)
		}
		if c.IPv6 != "" {
			if e.IPAddressType == "ipv4" {
				v.fail(append(cp, "ipv6"), "an ipv4 endpoint's ENIs have no IPv6 address (use ip_address_type: dualstack)")
			}
			v.claim(append(cp, "ipv6"), c.Subnet, c.IPv6, "ENI of endpoint "+e.Name)
		}
	}
}

// securityGroupsIn checks that names (an item's security_groups) are
// security groups of the topology in VPC vpc, the item's.
func (v *validator) securityGroupsIn(path []any, names []string, vpc, what string) {
	for j, name := range names {
		sg := v.sgs[name]
		if name == defaultGroupName {
			continue // the VPC's own
		}
		if sg == nil {
			v.fail(append(path, "security_groups", j), "security group %q is not defined", name)
		} else if sg.VPC != vpc {
			v.fail(append(path, "security_groups", j), "security group %s is in VPC %s, %s in %s", name, sg.VPC, what, vpc)
		}
	}
}
