package api

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
)

// supportedRegion is a Region a service is offered in.
type supportedRegion struct {
	Region string `xml:"region"`
	State  string `xml:"serviceState"`
}

type serviceConfiguration struct {
	SupportedRegions   []supportedRegion `xml:"supportedRegionSet>item"`
	Remote             bool              `xml:"remoteAccessEnabled"`
	ServiceType        []serviceType     `xml:"serviceType>item"`
	ID                 string            `xml:"serviceId"`
	Name               string            `xml:"serviceName"`
	State              string            `xml:"serviceState"`
	AZs                []string          `xml:"availabilityZoneSet>item"`
	AZIDs              []string          `xml:"availabilityZoneIdSet>item"`
	AcceptanceRequired bool              `xml:"acceptanceRequired"`
	ManagesEndpoints   bool              `xml:"managesVpcEndpoints"`
	NLBArns            []string          `xml:"networkLoadBalancerArnSet>item"`
	IPAddressTypes     []string          `xml:"supportedIpAddressTypeSet>item"`
	BaseDNSNames       []string          `xml:"baseEndpointDnsNameSet>item"`
	PrivateDNSName     string            `xml:"privateDnsName,omitempty"`
	PrivateDNSConfig   *pdnsConfig       `xml:"privateDnsNameConfiguration,omitempty"`
	Payer              string            `xml:"payerResponsibility,omitempty"`
	Tags               []tagItem         `xml:"tagSet>item"`
}

type pdnsConfig struct {
	State string `xml:"state"`
	Type  string `xml:"type"`
	Value string `xml:"value"`
	Name  string `xml:"name"`
}

type connection struct {
	ServiceID     string     `xml:"serviceId"`
	EndpointID    string     `xml:"vpcEndpointId"`
	ConnectionID  string     `xml:"vpcEndpointConnectionId"`
	Region        string     `xml:"vpcEndpointRegion,omitempty"`
	EndpointOwner string     `xml:"vpcEndpointOwner"`
	State         string     `xml:"vpcEndpointState"`
	Created       string     `xml:"creationTimestamp,omitempty"`
	DNSEntries    []dnsEntry `xml:"dnsEntrySet>item"`
	NLBArns       []string   `xml:"networkLoadBalancerArnSet>item"`
	IPAddressType string     `xml:"ipAddressType"`
}

type allowedPrincipal struct {
	Type      string `xml:"principalType"`
	Principal string `xml:"principal"`
	ServiceID string `xml:"serviceId"`
}

func (h *Handler) serviceConfig(m *ctl.State, s ctl.ServiceState) serviceConfiguration {
	out := serviceConfiguration{
		ServiceType: []serviceType{{"Interface"}}, ID: s.ID, Name: s.ServiceName, State: s.State,
		AZs: azNames(m, m.ServiceAZs(&s)), AZIDs: m.ServiceAZs(&s), AcceptanceRequired: s.AcceptanceRequired, IPAddressTypes: s.SupportedIPAddressTypes,
		BaseDNSNames: []string{s.ID + "." + cmpOr(s.Region, m.Region) + ".vpce.amazonaws.com"}, Tags: tagsOf(m, s.ID), Payer: s.PayerResponsibility,
	}
	if p := s.PrivateDNS; p != nil {
		out.PrivateDNSName = p.Name
		out.PrivateDNSConfig = &pdnsConfig{State: p.State, Type: "TXT", Value: p.TXTValue, Name: p.TXTName}
	}
	for _, lb := range s.LoadBalancers {
		out.NLBArns = append(out.NLBArns, m.LoadBalancerARN(lb))
	}
	out.SupportedRegions = append(out.SupportedRegions, supportedRegion{cmpOr(s.Region, m.Region), "Available"})
	for _, r := range s.SupportedRegions {
		out.SupportedRegions = append(out.SupportedRegions, supportedRegion{r, "Available"})
	}
	out.Remote = len(s.SupportedRegions) > 0
	return out
}

// principalType is how AWS types an allowed principal.
func principalType(p string) string {
	switch {
	case p == "*":
		return "All"
	case strings.HasSuffix(p, ":root"):
		return "Account"
	case strings.Contains(p, ":user/"):
		return "User"
	}
	return "Role"
}

// ec2Services runs the provider's actions: its endpoint services, who may
// reach them and the connection requests to them. Any other action it
// answers with errNotThisArea.
func (h *Handler) ec2Services(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
	case "DescribeVpcEndpointServiceConfigurations":
		f := q.filters()
		if err := unknownFilters(f, "service-name", "service-id", "service-state", "supported-ip-address-types", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("ServiceId")
		var out []serviceConfiguration
		var found []string
		for _, s := range m.Services {
			if s.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, s.ID) {
				continue
			}
			found = append(found, s.ID)
			if match(f, withTags(map[string][]string{"service-name": {s.ServiceName}, "service-id": {s.ID}, "service-state": {s.State},
				"supported-ip-address-types": s.SupportedIPAddressTypes}, m.Tags[s.ID])) {
				out = append(out, h.serviceConfig(m, s))
			}
		}
		for _, id := range ids {
			if !slices.Contains(found, id) {
				return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		return struct {
			Set  []serviceConfiguration `xml:"serviceConfigurationSet>item"`
			Next string                 `xml:"nextToken,omitempty"`
		}{out, next}, err

	case "DescribeVpcEndpointConnections":
		f := q.filters()
		if err := unknownFilters(f, "service-id", "vpc-endpoint-owner", "vpc-endpoint-id", "vpc-endpoint-state"); err != nil {
			return nil, err
		}
		var out []connection
		for _, e := range m.Endpoints {
			s, ok := m.ServiceByID(e.ServiceID)
			if !ok || s.OwnerID != caller {
				continue
			}
			if !match(f, map[string][]string{"service-id": {e.ServiceID}, "vpc-endpoint-owner": {e.OwnerID}, "vpc-endpoint-id": {e.ID}, "vpc-endpoint-state": {e.State}}) {
				continue
			}
			c := connection{ServiceID: e.ServiceID, EndpointID: e.ID, EndpointOwner: e.OwnerID, State: e.State, IPAddressType: e.IPAddressType,
				// The connection's id, the endpoint's hex after vpce-con-, and the
				// Region the endpoint is in (a cross-Region one's is not the service's).
				ConnectionID: "vpce-con-" + strings.TrimPrefix(e.ID, "vpce-"), Region: cmpOr(e.Region, m.Region)}
			if !e.Created.IsZero() {
				c.Created = e.Created.UTC().Format(time.RFC3339Nano)
			}
			for _, n := range m.DNSNames(e) {
				c.DNSEntries = append(c.DNSEntries, dnsEntry{DNSName: n, HostedZoneID: "Z7HUB22UULQXV"})
			}
			for _, lb := range s.LoadBalancers {
				c.NLBArns = append(c.NLBArns, m.LoadBalancerARN(lb))
			}
			out = append(out, c)
		}
		out, next, err := page(q, out)
		return struct {
			Set  []connection `xml:"vpcEndpointConnectionSet>item"`
			Next string       `xml:"nextToken,omitempty"`
		}{out, next}, err

	case "AcceptVpcEndpointConnections", "RejectVpcEndpointConnections":
		serviceID, ids := q.str("ServiceId"), q.list("VpcEndpointId")
		if serviceID == "" || len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "ServiceId and at least one VpcEndpointId are required"}
		}
		if s, ok := m.ServiceByID(serviceID); !ok || s.OwnerID != caller {
			return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", serviceID)}
		}
		verb := ctl.Accept
		if action == "RejectVpcEndpointConnections" {
			verb = ctl.Reject
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.AnswerConnection(caller, serviceID, id, verb) })

	case "ModifyVpcEndpointServicePermissions":
		serviceID := q.str("ServiceId")
		add, remove := q.list("AddAllowedPrincipals"), q.list("RemoveAllowedPrincipals")
		if _, err := h.b.Change(func(s *ctl.State) error { return s.ModifyPermissions(caller, serviceID, add, remove) }); err != nil {
			return nil, err
		}
		type added struct {
			Type      string `xml:"principalType"`
			Principal string `xml:"principal"`
			ServiceID string `xml:"serviceId"`
		}
		var out []added
		for _, p := range add {
			out = append(out, added{principalType(p), p, serviceID})
		}
		return struct {
			Added  []added `xml:"addedPrincipalSet>item"`
			Return bool    `xml:"return"`
		}{out, true}, nil

	case "DescribeVpcEndpointServicePermissions":
		serviceID := q.str("ServiceId")
		s, ok := m.ServiceByID(serviceID)
		if !ok || s.OwnerID != caller {
			return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", serviceID)}
		}
		f := q.filters()
		if err := unknownFilters(f, "principal", "principal-type"); err != nil {
			return nil, err
		}
		var out []allowedPrincipal
		for _, p := range s.AllowedPrincipals {
			if match(f, map[string][]string{"principal": {p}, "principal-type": {principalType(p)}}) {
				out = append(out, allowedPrincipal{principalType(p), p, s.ID})
			}
		}
		return struct {
			Set []allowedPrincipal `xml:"allowedPrincipals>item"`
		}{out}, nil

	case "CreateVpcEndpointServiceConfiguration":
		if len(q.list("GatewayLoadBalancerArn")) > 0 {
			return nil, &apiError{400, "InvalidParameter", "pvlink serves endpoint services of Network Load Balancers, not Gateway Load Balancers"}
		}
		var id string
		token := q.str("ClientToken")
		_, err := h.b.Change(func(s *ctl.State) error {
			if token != "" {
				for _, svc := range s.Services {
					if svc.OwnerID == caller && svc.ClientToken == token {
						id = svc.ID // the same request again: the same service
						return nil
					}
				}
			}
			svc, err := s.CreateService(caller, arnIDs(q.list("NetworkLoadBalancerArn")), q.str("AcceptanceRequired") == "true", q.list("SupportedIpAddressType"))
			if err != nil {
				return err
			}
			svc.ClientToken, id = token, svc.ID
			if err := s.SetSupportedRegions(svc, q.list("SupportedRegion"), nil); err != nil {
				return err
			}
			if n := q.str("PrivateDnsName"); n != "" {
				if err := s.SetPrivateDNSName(svc, n); err != nil {
					return err
				}
			}
			return tagOnCreate(s, caller, q, "vpc-endpoint-service", id)
		})
		if err != nil {
			return nil, err
		}
		m = h.b.Model()
		svc, _ := m.ServiceByID(id)
		return struct {
			Config serviceConfiguration `xml:"serviceConfiguration"`
			Token  string               `xml:"clientToken,omitempty"`
		}{h.serviceConfig(m, *svc), token}, nil

	case "ModifyVpcEndpointServicePayerResponsibility":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.SetPayerResponsibility(caller, q.str("ServiceId"), q.str("PayerResponsibility"))
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "ModifyVpcEndpointServiceConfiguration":
		var acceptance *bool
		if v := q.str("AcceptanceRequired"); v != "" {
			b := v == "true"
			acceptance = &b
		}
		_, err := h.b.Change(func(s *ctl.State) error {
			if err := s.ModifyService(caller, q.str("ServiceId"), acceptance, arnIDs(q.list("AddNetworkLoadBalancerArn")), arnIDs(q.list("RemoveNetworkLoadBalancerArn")),
				q.list("AddSupportedIpAddressType"), q.list("RemoveSupportedIpAddressType")); err != nil {
				return err
			}
			svc, _ := s.ServiceByID(q.str("ServiceId"))
			if err := s.SetSupportedRegions(svc, q.list("AddSupportedRegion"), q.list("RemoveSupportedRegion")); err != nil {
				return err
			}
			if n := q.str("PrivateDnsName"); n != "" {
				return s.SetPrivateDNSName(svc, n)
			}
			if q.str("RemovePrivateDnsName") == "true" {
				return s.SetPrivateDNSName(svc, "")
			}
			return nil
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteVpcEndpointServiceConfigurations":
		ids := q.list("ServiceId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "at least one ServiceId is required"}
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.DeleteService(caller, id) })

	case "StartVpcEndpointServicePrivateDnsVerification":
		if _, err := h.b.VerifyPrivateDNS(caller, q.str("ServiceId")); err != nil {
			return nil, err
		}
		return struct {
			Return bool `xml:"return"`
		}{true}, nil

	default:
		return nil, errNotThisArea
	}
}
