package ctl

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// PrivateLink's built-in Contributor Insights rules: for an endpoint
// service, rankings of its endpoints by active connections, bytes, new
// connections and RSTs sent. A rule is made from its template for one
// service (PutManagedInsightRules) and ranks from when it is enabled.

// InsightTemplates are the templates and the service metric each ranks by.
var InsightTemplates = map[string]string{
	"VpcEndpointService-ActiveConnectionsByEndpointId-v1": "ActiveConnections",
	"VpcEndpointService-BytesByEndpointId-v1":             "BytesProcessed",
	"VpcEndpointService-NewConnectionsByEndpointId-v1":    "NewConnections",
	"VpcEndpointService-RstPacketsByEndpointId-v1":        "RstPacketsSent",
}

// InsightRuleState is a managed Contributor Insights rule.
type InsightRuleState struct {
	Name      string    `json:"name"`
	Template  string    `json:"template"`
	ServiceID string    `json:"service_id"`
	OwnerID   string    `json:"owner_id"`
	State     string    `json:"state"` // ENABLED or DISABLED
	Since     time.Time `json:"since"` // when it was last enabled
}

// ServiceARN is an endpoint service's ARN, as the insight rules name it.
func (s *State) ServiceARN(svc ServiceState) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:vpc-endpoint-service/%s", s.Region, svc.OwnerID, svc.ID)
}

// serviceByARN finds the caller's service by its ARN.
func (s *State) serviceByARN(caller, arn string) (ServiceState, error) {
	for _, svc := range s.Services {
		if s.ServiceARN(svc) == arn && svc.OwnerID == caller {
			return svc, nil
		}
	}
	return ServiceState{}, &NotFoundError{Kind: "ResourceARN", ID: arn}
}

// InsightRuleName is the name of the rule a template makes for a service.
func InsightRuleName(template, serviceID string) string { return template + "-" + serviceID }

// ManagedInsightRules lists the templates for a service with the state of
// the rule each made, if any.
func (s *State) ManagedInsightRules(caller, arn string) ([]string, map[string]InsightRuleState, error) {
	svc, err := s.serviceByARN(caller, arn)
	if err != nil {
		return nil, nil, err
	}
	rules := map[string]InsightRuleState{}
	for _, r := range s.InsightRules {
		if r.ServiceID == svc.ID {
			rules[r.Template] = r
		}
	}
	var names []string
	for t := range InsightTemplates {
		names = append(names, t)
	}
	slices.Sort(names)
	return names, rules, nil
}

// PutManagedInsightRule makes (or enables again) a template's rule for a
// service.
func (s *State) PutManagedInsightRule(caller, template, arn string, now time.Time) error {
	if _, ok := InsightTemplates[template]; !ok {
		return refuse("TemplateName %q: PrivateLink's templates are VpcEndpointService-{ActiveConnections,Bytes,NewConnections,RstPackets}ByEndpointId-v1", template)
	}
	svc, err := s.serviceByARN(caller, arn)
	if err != nil {
		return err
	}
	name := InsightRuleName(template, svc.ID)
	if i := slices.IndexFunc(s.InsightRules, func(r InsightRuleState) bool { return r.Name == name }); i >= 0 {
		if s.InsightRules[i].State != "ENABLED" {
			s.InsightRules[i].State, s.InsightRules[i].Since = "ENABLED", now.UTC()
		}
		return nil
	}
	s.InsightRules = append(s.InsightRules, InsightRuleState{Name: name, Template: template, ServiceID: svc.ID, OwnerID: caller, State: "ENABLED", Since: now.UTC()})
	return nil
}

// SetInsightRule enables, disables (enable false) or deletes (del) one of
// the caller's rules.
func (s *State) SetInsightRule(caller, name string, enable, del bool, now time.Time) error {
	i := slices.IndexFunc(s.InsightRules, func(r InsightRuleState) bool { return r.Name == name && r.OwnerID == caller })
	if i < 0 {
		return &NotFoundError{Kind: "InsightRule", ID: name}
	}
	r := &s.InsightRules[i]
	switch {
	case del:
		s.InsightRules = slices.Delete(s.InsightRules, i, i+1)
	case enable && r.State != "ENABLED":
		r.State, r.Since = "ENABLED", now.UTC()
	case !enable:
		r.State = "DISABLED"
	}
	return nil
}

// InsightRule finds one of the caller's rules.
func (s *State) InsightRule(caller, name string) (InsightRuleState, bool) {
	for _, r := range s.InsightRules {
		if r.Name == name && r.OwnerID == caller {
			return r, true
		}
	}
	return InsightRuleState{}, false
}

// InsightDefinition is a rule's definition as CloudWatch shows it.
func InsightDefinition(r InsightRuleState) string {
	metric := InsightTemplates[r.Template]
	return fmt.Sprintf(`{"Schema":{"Name":"CloudWatchLogRule","Version":1},"Contribution":{"Keys":["VPC Endpoint Id"],"ValueOf":%q,"Filters":[{"Match":"Service Id","In":[%q]}]},"AggregateOn":%q}`,
		metric, r.ServiceID, map[bool]string{true: "Max", false: "Sum"}[strings.HasPrefix(metric, "Active")])
}
