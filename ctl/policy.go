package ctl

import (
	"fmt"
	"slices"
)

// IAM for cross-Region access, as the guide's page has it: the
// permission-only action vpce:AllowMultiRegion, which a provider needs to
// offer a service in another Region and a consumer to create an endpoint
// to a service of another Region, narrowed by the condition keys
// ec2:VpceSupportedRegion and ec2:VpceServiceRegion. Each account has a
// small policy in the topology; without one, as in AWS, it is denied.

// The action and condition keys.
const (
	ActionAllowMultiRegion = "vpce:AllowMultiRegion"
	KeySupportedRegion     = "ec2:VpceSupportedRegion"
	KeyServiceRegion       = "ec2:VpceServiceRegion"
)

// PolicyStatement is one statement of an account's policy: Effect Allow or
// Deny, its actions, and conditions by operator (StringEquals,
// StringNotEquals), key and values.
type PolicyStatement struct {
	Effect    string                         `yaml:"effect" json:"effect"`
	Action    []string                       `yaml:"action" json:"action"`
	Condition map[string]map[string][]string `yaml:"condition" json:"condition,omitempty"`
}

// checkStatement refuses a statement pvlink cannot evaluate.
func checkStatement(st PolicyStatement) error {
	if st.Effect != "Allow" && st.Effect != "Deny" {
		return fmt.Errorf("effect %q: use Allow or Deny", st.Effect)
	}
	for _, a := range st.Action {
		if a != ActionAllowMultiRegion && a != "vpce:*" && a != "*" {
			return fmt.Errorf("action %q: pvlink evaluates %s (or vpce:*, *)", a, ActionAllowMultiRegion)
		}
	}
	for op, keys := range st.Condition {
		if op != "StringEquals" && op != "StringNotEquals" {
			return fmt.Errorf("condition operator %q: use StringEquals or StringNotEquals", op)
		}
		for k := range keys {
			if k != KeySupportedRegion && k != KeyServiceRegion {
				return fmt.Errorf("condition key %q: use %s or %s", k, KeySupportedRegion, KeyServiceRegion)
			}
		}
	}
	return nil
}

// matches reports whether a statement applies to action with the request's
// condition keys.
func (st PolicyStatement) matches(action string, keys map[string]string) bool {
	if !slices.ContainsFunc(st.Action, func(a string) bool { return a == action || a == "*" || a == "vpce:*" }) {
		return false
	}
	for op, conds := range st.Condition {
		for k, values := range conds {
			v, ok := keys[k]
			switch op {
			case "StringEquals":
				if !ok || !slices.Contains(values, v) {
					return false
				}
			case "StringNotEquals":
				if ok && slices.Contains(values, v) {
					return false
				}
			}
		}
	}
	return true
}

// Allowed evaluates an account's policy as IAM does: an explicit Deny
// wins, then an Allow, else the implicit deny.
func (a Account) Allowed(action string, keys map[string]string) bool {
	allowed := false
	for _, st := range a.IAMPolicy {
		if !st.matches(action, keys) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

// accountByID finds an account.
func (s *State) accountByID(id string) (Account, bool) {
	for _, a := range s.Accounts {
		if a.ID == id {
			return a, true
		}
	}
	return Account{}, false
}

// mayMultiRegion checks that an account may use cross-Region access with
// the condition key key at value, and that the Region, if opt-in, is one
// it opted into.
func (s *State) mayMultiRegion(accountID, key, region string) error {
	a, ok := s.accountByID(accountID)
	if !ok {
		return &UnauthorizedError{Msg: "account " + accountID + " is not the fabric's"}
	}
	if !a.Allowed(ActionAllowMultiRegion, map[string]string{key: region}) {
		return &UnauthorizedError{Msg: fmt.Sprintf("account %s (%s) is not authorized to perform %s with %s %s: its policy does not allow it (denied by default)", a.Name, a.ID, ActionAllowMultiRegion, key, region)}
	}
	if s.optIn(region) && !slices.Contains(a.OptedInRegions, region) {
		return refuse("Region %s is an opt-in Region that account %s (%s) has not opted into (opted_in_regions)", region, a.Name, a.ID)
	}
	return nil
}

// optIn reports whether a Region must be opted into.
func (s *State) optIn(region string) bool {
	for _, r := range s.Regions {
		if r.Name == region {
			return r.OptIn
		}
	}
	return false
}
