package ctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"pvlink.dev/pvlink/ctl/store"
)

// The outbox: connection events are written to the store in the same
// transaction as the change that made them, so none is lost to a crash,
// and delivered from there to each subscriber of their topic, again and
// again with a growing pause, until each has taken it (a 2xx answer), for
// up to a day.

const (
	prefixOutbox = "outbox/"
	// giveUpAfter is how long an event is retried.
	giveUpAfter = 24 * time.Hour
	maxBackoff  = 30 * time.Second
)

// outboxRecord is an event on its way.
type outboxRecord struct {
	Event     Event     `json:"event"`
	Delivered []string  `json:"delivered,omitempty"` // subscribers that took it
	Attempts  int       `json:"attempts"`
	NextTry   time.Time `json:"next_try"`
	Created   time.Time `json:"created"`
}

// putEvents writes a change's events to the outbox in its transaction.
func putEvents(tx store.Tx, events []Event, now time.Time) error {
	for i, ev := range events {
		data, err := json.Marshal(outboxRecord{Event: ev, Created: now, NextTry: now})
		if err != nil {
			return err
		}
		if err := tx.Put(fmt.Sprintf("%s%020d-%04d", prefixOutbox, tx.Rev()+1, i), data); err != nil {
			return err
		}
	}
	return nil
}

// SNSMessage is what a subscriber receives: SNS's HTTP notification, its
// Message the connection event as JSON.
type SNSMessage struct {
	Type      string `json:"Type"` // Notification
	MessageID string `json:"MessageId"`
	TopicArn  string `json:"TopicArn"`
	Subject   string `json:"Subject"`
	Message   string `json:"Message"`
	Timestamp string `json:"Timestamp"`
}

// deliverer sends the outbox's events.
type deliverer struct {
	st     store.Store
	log    *slog.Logger
	model  func() *State
	client *http.Client
}

// run delivers until ctx ends, looking at the outbox on every wake-up and
// every 200 ms.
func (o *deliverer) run(ctx context.Context, wake <-chan struct{}) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		o.pass(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

func (o *deliverer) pass(ctx context.Context, now time.Time) {
	type due struct {
		key string
		rec outboxRecord
	}
	var list []due
	o.st.View(func(tx store.ReadTx) error {
		return tx.List(prefixOutbox, func(k string, v []byte) error {
			var r outboxRecord
			if json.Unmarshal(v, &r) == nil && !r.NextTry.After(now) {
				list = append(list, due{k, r})
			}
			return nil
		})
	})
	m := o.model()
	for _, d := range list {
		if ctx.Err() != nil {
			return
		}
		r := d.rec
		topic, ok := m.topic(r.Event.TopicARN)
		done := true
		if ok {
			for _, sub := range topic.Subscribers {
				if slices.Contains(r.Delivered, sub) {
					continue
				}
				if err := o.post(ctx, sub, d.key, r.Event); err != nil {
					done = false
					if r.Attempts == 0 || r.Attempts%10 == 0 {
						o.log.Warn("notification not delivered yet; retrying", "topic", r.Event.TopicARN, "subscriber", sub, "attempts", r.Attempts+1, "err", err)
					}
					continue
				}
				r.Delivered = append(r.Delivered, sub)
			}
		}
		if !done && now.Sub(r.Created) > giveUpAfter {
			o.log.Error("notification given up after a day", "topic", r.Event.TopicARN, "event", r.Event.Message.Event, "endpoint", r.Event.Message.EndpointID)
			done = true
		}
		o.st.Update(func(tx store.Tx) error {
			if done {
				return tx.Delete(d.key)
			}
			r.Attempts++
			r.NextTry = now.Add(min(100*time.Millisecond<<min(r.Attempts, 20), maxBackoff))
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			return tx.Put(d.key, data)
		})
	}
}

// post delivers one event to one subscriber.
func (o *deliverer) post(ctx context.Context, url, key string, ev Event) error {
	msg, err := json.Marshal(ev.Message)
	if err != nil {
		return err
	}
	id := sha256.Sum256([]byte(key))
	body, _ := json.Marshal(SNSMessage{
		Type: "Notification", MessageID: hex.EncodeToString(id[:16]), TopicArn: ev.TopicARN,
		Subject: "VPC endpoint connection " + ev.Message.Event, Message: string(msg), Timestamp: ev.Message.Time.Format(time.RFC3339Nano),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
	req.Header.Set("x-amz-sns-message-type", "Notification")
	req.Header.Set("x-amz-sns-topic-arn", ev.TopicARN)
	resp, err := o.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
