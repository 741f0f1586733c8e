package ctl

import "fmt"

// A VPC's DNS attributes, as AWS has them:
//
//   - enableDnsSupport: the VPC's resolver (its base address + 2) answers.
//     Off, it answers nothing at all: a query times out.
//   - enableDnsHostnames: on top of DNS support, the private hosted zones
//     of the VPC are used, which is what an endpoint's private DNS name is.
//     Off, the endpoints' own names (regional and zonal) still resolve,
//     their private DNS names do not.
//
// Private DNS can be enabled on an endpoint only in a VPC with both on
// (CreateVpcEndpoint, ModifyVpcEndpoint, a topology); turned off later,
// the endpoint keeps PrivateDnsEnabled and its name stops resolving until
// they are on again. DNS hostnames can be turned on only while DNS support
// is on.

// VPC attribute names (DescribeVpcAttribute's Attribute).
const (
	AttrDNSSupport   = "enableDnsSupport"
	AttrDNSHostnames = "enableDnsHostnames"
	// AttrNAUMetrics is enableNetworkAddressUsageMetrics: shown off,
	// refused on (pvlink publishes no such metric).
	AttrNAUMetrics = "enableNetworkAddressUsageMetrics"
)

// PrivateDNSReady says whether the VPC's private hosted zones answer: both
// of its DNS attributes on.
func (v *VPCState) PrivateDNSReady() bool { return !v.DNSSupportOff && !v.DNSHostnamesOff }

// VPCAttribute is the value of a VPC attribute.
func (v *VPCState) VPCAttribute(attr string) (bool, error) {
	switch attr {
	case AttrDNSSupport:
		return !v.DNSSupportOff, nil
	case AttrDNSHostnames:
		return !v.DNSHostnamesOff, nil
	case AttrNAUMetrics:
		return false, nil
	}
	return false, refuse("Value (%s) for parameter attribute is invalid. Unknown attribute: use %s, %s or %s", attr, AttrDNSSupport, AttrDNSHostnames, AttrNAUMetrics)
}

// SetVPCAttribute sets a DNS attribute of a VPC of the caller's.
func (s *State) SetVPCAttribute(caller, vpcID, attr string, on bool) error {
	v, err := s.ownedVPC(caller, vpcID)
	if err != nil {
		return err
	}
	switch attr {
	case AttrDNSSupport:
		v.DNSSupportOff = !on
	case AttrDNSHostnames:
		if on && v.DNSSupportOff {
			return refuse("DNS hostnames can be enabled only while DNS support is: enable %s of %s first", AttrDNSSupport, v.ID)
		}
		v.DNSHostnamesOff = !on
	case AttrNAUMetrics:
		if on {
			return refuse("%s: pvlink publishes no Network Address Usage metrics", AttrNAUMetrics)
		}
	default:
		_, err := v.VPCAttribute(attr)
		return err
	}
	return nil
}

// vpcByID is the VPC with the id, or nil.
func (s *State) vpcByID(id string) *VPCState {
	for i := range s.VPCs {
		if s.VPCs[i].ID == id {
			return &s.VPCs[i]
		}
	}
	return nil
}

// privateDNSRefusal is why private DNS cannot be enabled in the VPC, or
// nil: AWS's words.
func (s *State) privateDNSRefusal(vpcID string) error {
	if v := s.vpcByID(vpcID); v != nil && !v.PrivateDNSReady() {
		return refuse("Enabling private DNS requires both %s and %s VPC attributes set to true for %s", AttrDNSSupport, AttrDNSHostnames, vpcID)
	}
	return nil
}

// topologyVPCDNS are the DNS attributes a topology's VPC declares: both on
// unless it says otherwise, DNS hostnames off with DNS support.
func topologyVPCDNS(v VPC) (supportOff, hostnamesOff bool) {
	supportOff = v.EnableDNSSupport != nil && !*v.EnableDNSSupport
	hostnamesOff = supportOff
	if v.EnableDNSHostnames != nil {
		hostnamesOff = !*v.EnableDNSHostnames
	}
	return supportOff, hostnamesOff
}

// keepVPCDNS gives the VPCs of next that old has, and whose DNS attributes
// the topology leaves out, the attributes they have now. It refuses DNS
// hostnames declared on where DNS support stays off.
func (next *State) keepVPCDNS(old *State, t *Topology) error {
	declared := map[string]VPC{}
	for _, v := range t.VPCs {
		declared[v.Name] = v
	}
	for i := range next.VPCs {
		v := &next.VPCs[i]
		d := declared[v.Name]
		for _, ov := range old.VPCs {
			if ov.Name != v.Name {
				continue
			}
			if d.EnableDNSSupport == nil {
				v.DNSSupportOff = ov.DNSSupportOff
			}
			if d.EnableDNSHostnames == nil {
				v.DNSHostnamesOff = ov.DNSHostnamesOff || v.DNSSupportOff
			}
		}
		if v.DNSSupportOff && !v.DNSHostnamesOff {
			return refuse("VPC %s: DNS hostnames need DNS support, which is off (set enable_dns_support: true)", v.Name)
		}
	}
	return nil
}

// checkVPCDNS is the validator's rule: DNS hostnames need DNS support, and
// an endpoint's private DNS both.
func (v *validator) checkVPCDNS(path []any, vpc *VPC) {
	if vpc.EnableDNSSupport != nil && !*vpc.EnableDNSSupport && vpc.EnableDNSHostnames != nil && *vpc.EnableDNSHostnames {
		v.fail(append(path, "enable_dns_hostnames"), "DNS hostnames need DNS support (enable_dns_support is false)")
	}
}

// privateDNSVPCFailure is why an endpoint of the topology cannot have
// private DNS in its VPC, or "".
func privateDNSVPCFailure(vpc *VPC) string {
	if vpc == nil {
		return ""
	}
	if supportOff, hostnamesOff := topologyVPCDNS(*vpc); supportOff || hostnamesOff {
		return fmt.Sprintf("private DNS needs enable_dns_support and enable_dns_hostnames on in VPC %s", vpc.Name)
	}
	return ""
}
