package api

import (
	"fmt"

	"pvlink.dev/pvlink/ctl"
)

const snsNamespace = "http://sns.amazonaws.com/doc/2010-03-31/"

// sns is the part of SNS connection notifications need: a topic, and HTTP
// subscribers to it (loopback URLs; delivered without a subscription
// confirmation round).
func (h *Handler) sns(caller string, q query) (any, error) {
	m := h.b.Model()
	switch action := q.str("Action"); action {
	case "CreateTopic":
		name := q.str("Name")
		if !topicNameRe(name) {
			return nil, &apiError{400, "InvalidParameter", fmt.Sprintf("Invalid parameter: Topic Name %q (1-256 letters, digits, '-' and '_')", name)}
		}
		arn := m.TopicARN(caller, name)
		_, err := h.b.Change(func(s *ctl.State) error { return s.CreateTopic(caller, name) })
		return struct {
			ARN string `xml:"TopicArn"`
		}{arn}, err

	case "Subscribe":
		if p := q.str("Protocol"); p != "http" && p != "https" {
			return nil, &apiError{400, "InvalidParameter", fmt.Sprintf("Invalid parameter: Protocol %q: pvlink delivers to http and https subscribers", p)}
		}
		topic, endpoint := q.str("TopicArn"), q.str("Endpoint")
		_, err := h.b.Change(func(s *ctl.State) error { return s.Subscribe(caller, topic, endpoint) })
		return struct {
			ARN string `xml:"SubscriptionArn"`
		}{topic + ":" + requestID()}, err

	case "ListTopics":
		type topic struct {
			ARN string `xml:"TopicArn"`
		}
		var out []topic
		for _, t := range m.Topics {
			if t.OwnerID == caller {
				out = append(out, topic{t.ARN})
			}
		}
		return struct {
			Topics []topic `xml:"Topics>member"`
		}{out}, nil

	case "ListSubscriptionsByTopic":
		type sub struct {
			ARN      string `xml:"SubscriptionArn"`
			Owner    string `xml:"Owner"`
			Protocol string `xml:"Protocol"`
			Endpoint string `xml:"Endpoint"`
			TopicArn string `xml:"TopicArn"`
		}
		var out []sub
		for _, t := range m.Topics {
			if t.ARN == q.str("TopicArn") && t.OwnerID == caller {
				for _, s := range t.Subscribers {
					out = append(out, sub{ARN: t.ARN + ":" + s, Owner: caller, Protocol: "http", Endpoint: s, TopicArn: t.ARN})
				}
			}
		}
		return struct {
			Subs []sub `xml:"Subscriptions>member"`
		}{out}, nil
	}
	return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves CreateTopic, ListTopics, Subscribe and ListSubscriptionsByTopic of SNS)", q.str("Action"))}
}

func topicNameRe(name string) bool {
	if len(name) == 0 || len(name) > 256 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
