package ctl

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// Connection notifications: a provider subscribes a service's events
// (Connect, Accept, Reject, Delete), a consumer an endpoint's (Accept,
// Reject, Delete), to an SNS topic of its own; pvlink delivers each event
// to the topic's HTTP subscribers, for real and with retries. AWS does not
// publish the message body; pvlink's is documented in the README.

// TopicState is an SNS topic a fabric delivers to: its HTTP subscribers
// (loopback URLs: ctld runs in the host's namespace).
type TopicState struct {
	Origin      string   `json:"origin,omitempty"`
	Name        string   `json:"name"`
	ARN         string   `json:"arn"`
	OwnerID     string   `json:"owner_id"`
	Subscribers []string `json:"subscribers"`
}

// NotificationState is a connection notification.
type NotificationState struct {
	ID         string   `json:"id"`
	OwnerID    string   `json:"owner_id"`
	ServiceID  string   `json:"service_id,omitempty"`
	EndpointID string   `json:"endpoint_id,omitempty"`
	TopicARN   string   `json:"topic_arn"`
	Events     []string `json:"events"`
	State      string   `json:"state"` // Enabled
	// ClientToken makes CreateVpcEndpointConnectionNotification
	// idempotent for its caller.
	ClientToken string `json:"client_token,omitempty"`
}

// The connection events.
var connectionEvents = []string{"Accept", "Connect", "Delete", "Reject"}

// CheckSubscriber refuses a subscriber URL ctld could not, or must not,
// deliver to.
func CheckSubscriber(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return refuse("subscriber %q is not an http(s) URL", raw)
	}
	switch h := u.Hostname(); {
	case h == "localhost", h == "::1", len(h) > 4 && h[:4] == "127.":
	default:
		return refuse("subscriber %s: ctld delivers only to loopback addresses (127.0.0.0/8, ::1, localhost)", raw)
	}
	return nil
}

func (s *State) topic(arn string) (*TopicState, bool) {
	for i := range s.Topics {
		if s.Topics[i].ARN == arn {
			return &s.Topics[i], true
		}
	}
	return nil, false
}

// Subscribe adds an HTTP subscriber to a topic of the caller's, making the
// topic if it does not exist.
func (s *State) Subscribe(caller, topicARN, subscriber string) error {
	if err := CheckSubscriber(subscriber); err != nil {
		return err
	}
	t, ok := s.topic(topicARN)
	if !ok {
		acct, name, err := parseTopicARN(topicARN, s.Region)
		if err != nil {
			return err
		}
		if acct != caller {
			return &UnauthorizedError{fmt.Sprintf("topic %s belongs to account %s, not %s", topicARN, acct, caller)}
		}
		s.Topics = append(s.Topics, TopicState{Origin: "api", Name: name, ARN: topicARN, OwnerID: caller})
		t = &s.Topics[len(s.Topics)-1]
	}
	if t.OwnerID != caller {
		return &UnauthorizedError{fmt.Sprintf("topic %s belongs to account %s, not %s", topicARN, t.OwnerID, caller)}
	}
	if !slices.Contains(t.Subscribers, subscriber) {
		t.Subscribers = append(t.Subscribers, subscriber)
	}
	return nil
}

// CreateTopic makes a topic of the caller's (again: nothing changes).
func (s *State) CreateTopic(caller, name string) error {
	arn := s.TopicARN(caller, name)
	if _, ok := s.topic(arn); !ok {
		s.Topics = append(s.Topics, TopicState{Origin: "api", Name: name, ARN: arn, OwnerID: caller})
	}
	return nil
}

// TopicARN is the ARN of an account's topic in the fabric's Region.
func (s *State) TopicARN(account, name string) string {
	return fmt.Sprintf("arn:aws:sns:%s:%s:%s", s.Region, account, name)
}

func parseTopicARN(arn, region string) (account, name string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[3] != region || !accountIDRe.MatchString(parts[4]) || parts[5] == "" {
		return "", "", refuse("%q is not an SNS topic ARN of Region %s (arn:aws:sns:%s:ACCOUNT:NAME)", arn, region, region)
	}
	return parts[4], parts[5], nil
}

// NotificationRequest is CreateVpcEndpointConnectionNotification's.
type NotificationRequest struct {
	ServiceID, EndpointID, TopicARN string
	Events                          []string
}

// CreateNotification subscribes a topic of the caller's to the events of a
// service or an endpoint of the caller's.
func (s *State) CreateNotification(caller string, req NotificationRequest) (*NotificationState, error) {
	if (req.ServiceID == "") == (req.EndpointID == "") {
		return nil, refuse("give a ServiceId or a VpcEndpointId, one of them")
	}
	if err := s.checkNotification(caller, req.TopicARN, req.Events, req.EndpointID != ""); err != nil {
		return nil, err
	}
	if req.ServiceID != "" {
		if _, err := s.ownedService(caller, req.ServiceID); err != nil {
			return nil, err
		}
	} else if e, ok := s.EndpointByID(req.EndpointID); !ok || e.OwnerID != caller {
		return nil, &NotFoundError{"VpcEndpointId", req.EndpointID}
	}
	n := NotificationState{ID: newID("vpce-nfn-"), OwnerID: caller, ServiceID: req.ServiceID, EndpointID: req.EndpointID,
		TopicARN: req.TopicARN, Events: slices.Clone(req.Events), State: "Enabled"}
	s.Notifications = append(s.Notifications, n)
	return &s.Notifications[len(s.Notifications)-1], nil
}

func (s *State) checkNotification(caller, topicARN string, events []string, forEndpoint bool) error {
	if len(events) == 0 {
		return refuse("ConnectionEvents: name at least one of Accept, Connect, Delete, Reject")
	}
	for _, ev := range events {
		if !slices.Contains(connectionEvents, ev) {
			return refuse("connection event %q is not one of Accept, Connect, Delete, Reject", ev)
		}
		if forEndpoint && ev == "Connect" {
			return refuse("an endpoint's notification takes Accept, Delete and Reject; Connect is the service's")
		}
	}
	acct, _, err := parseTopicARN(topicARN, s.Region)
	if err != nil {
		return err
	}
	if acct != caller {
		return &UnauthorizedError{fmt.Sprintf("topic %s belongs to account %s, not %s", topicARN, acct, caller)}
	}
	return nil
}

// ModifyNotification changes a notification's topic or events.
func (s *State) ModifyNotification(caller, id, topicARN string, events []string) error {
	for i := range s.Notifications {
		n := &s.Notifications[i]
		if n.ID != id || n.OwnerID != caller {
			continue
		}
		if topicARN == "" {
			topicARN = n.TopicARN
		}
		if len(events) == 0 {
			events = n.Events
		}
		if err := s.checkNotification(caller, topicARN, events, n.EndpointID != ""); err != nil {
			return err
		}
		n.TopicARN, n.Events = topicARN, slices.Clone(events)
		return nil
	}
	return &NotFoundError{"ConnectionNotification", id}
}

// DeleteNotification deletes a notification of the caller's.
func (s *State) DeleteNotification(caller, id string) error {
	n := len(s.Notifications)
	s.Notifications = slices.DeleteFunc(s.Notifications, func(o NotificationState) bool { return o.ID == id && o.OwnerID == caller })
	if len(s.Notifications) == n {
		return &NotFoundError{"ConnectionNotification", id}
	}
	return nil
}

// ConnectionMessage is the body pvlink delivers for a connection event:
// SNS's Message, as JSON.
type ConnectionMessage struct {
	NotificationID   string    `json:"connectionNotificationId"`
	Event            string    `json:"connectionEvent"`
	ServiceID        string    `json:"serviceId"`
	EndpointID       string    `json:"vpcEndpointId"`
	EndpointOwner    string    `json:"vpcEndpointOwner"`
	EndpointState    string    `json:"vpcEndpointState"`
	Time             time.Time `json:"time"`
	NotificationType string    `json:"connectionNotificationType"` // Topic
}

// Event is one message to deliver to a topic.
type Event struct {
	TopicARN string            `json:"topic_arn"`
	Message  ConnectionMessage `json:"message"`
}

// ConnectionEvents are the events a change from old to next makes, for the
// notifications next has.
func ConnectionEvents(old, next *State, now time.Time) []Event {
	before := map[string]string{}
	for _, e := range old.Endpoints {
		before[e.ID] = e.State
	}
	var out []Event
	emit := func(e EndpointState, ev string) {
		for _, n := range next.Notifications {
			if (n.ServiceID == e.ServiceID || n.EndpointID == e.ID) && slices.Contains(n.Events, ev) {
				out = append(out, Event{TopicARN: n.TopicARN, Message: ConnectionMessage{
					NotificationID: n.ID, Event: ev, ServiceID: e.ServiceID, EndpointID: e.ID, EndpointOwner: e.OwnerID,
					EndpointState: e.State, Time: now.UTC(), NotificationType: "Topic"}})
			}
		}
	}
	for _, e := range next.Endpoints {
		was, existed := before[e.ID]
		switch {
		case !existed:
			emit(e, "Connect")
			if e.State != snapshot.StatePendingAcceptance {
				emit(e, "Accept") // accepted at once
			}
		case was == e.State:
		case was == snapshot.StatePendingAcceptance && e.State == snapshot.StatePending:
			emit(e, "Accept")
		case e.State == snapshot.StateRejected:
			emit(e, "Reject")
		case e.State == snapshot.StateDeleting:
			emit(e, "Delete")
		}
	}
	return out
}
