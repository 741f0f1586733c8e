package api

import (
	"fmt"

	"pvlink.dev/pvlink/ctl"
)

type notification struct {
	ID         string   `xml:"connectionNotificationId"`
	ServiceID  string   `xml:"serviceId,omitempty"`
	EndpointID string   `xml:"vpcEndpointId,omitempty"`
	Type       string   `xml:"connectionNotificationType"`
	ARN        string   `xml:"connectionNotificationArn"`
	Events     []string `xml:"connectionEvents>item"`
	State      string   `xml:"connectionNotificationState"`
}

func notificationOut(n ctl.NotificationState) notification {
	return notification{ID: n.ID, ServiceID: n.ServiceID, EndpointID: n.EndpointID, Type: "Topic", ARN: n.TopicARN, Events: n.Events, State: n.State}
}

// ec2Notifications runs the actions on connection notifications, an
// endpoint's or a service's. Any other action it answers with
// errNotThisArea.
func (h *Handler) ec2Notifications(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
	case "CreateVpcEndpointConnectionNotification":
		var out notification
		token := q.str("ClientToken")
		_, err := h.b.Change(func(s *ctl.State) error {
			if token != "" {
				for _, n := range s.Notifications {
					if n.OwnerID == caller && n.ClientToken == token {
						out = notificationOut(n) // the same request again
						return nil
					}
				}
			}
			n, err := s.CreateNotification(caller, ctl.NotificationRequest{ServiceID: q.str("ServiceId"), EndpointID: q.str("VpcEndpointId"),
				TopicARN: q.str("ConnectionNotificationArn"), Events: q.list("ConnectionEvents")})
			if err == nil {
				n.ClientToken = token
				out = notificationOut(*n)
			}
			return err
		})
		return struct {
			N     notification `xml:"connectionNotification"`
			Token string       `xml:"clientToken,omitempty"`
		}{out, token}, err

	case "DescribeVpcEndpointConnectionNotifications":
		f := q.filters()
		if err := unknownFilters(f, "connection-notification-arn", "connection-notification-id", "connection-notification-state",
			"connection-notification-type", "service-id", "vpc-endpoint-id"); err != nil {
			return nil, err
		}
		id := q.str("ConnectionNotificationId")
		var out []notification
		found := false
		for _, n := range m.Notifications {
			if n.OwnerID != caller || id != "" && n.ID != id {
				continue
			}
			found = true
			o := notificationOut(n)
			if match(f, map[string][]string{"connection-notification-arn": {o.ARN}, "connection-notification-id": {o.ID}, "connection-notification-state": {o.State},
				"connection-notification-type": {o.Type}, "service-id": {o.ServiceID}, "vpc-endpoint-id": {o.EndpointID}}) {
				out = append(out, o)
			}
		}
		if id != "" && !found {
			return nil, &apiError{400, "InvalidConnectionNotification", fmt.Sprintf("The connection notification '%s' does not exist", id)}
		}
		return struct {
			Set []notification `xml:"connectionNotificationSet>item"`
		}{out}, nil

	case "ModifyVpcEndpointConnectionNotification":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.ModifyNotification(caller, q.str("ConnectionNotificationId"), q.str("ConnectionNotificationArn"), q.list("ConnectionEvents"))
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteVpcEndpointConnectionNotifications":
		ids := q.list("ConnectionNotificationId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "at least one ConnectionNotificationId is required"}
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.DeleteNotification(caller, id) })

	default:
		return nil, errNotThisArea
	}
}
