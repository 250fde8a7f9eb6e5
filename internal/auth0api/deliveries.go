package auth0api

// The Event Streams deliveries: the reconciler recovers the user.created
// events whose delivery to ingest failed with [Client.ListDeliveries];
// [Client.Redeliver] and [Client.RedeliverMany] ask Auth0 to deliver again
// instead, for an operator who prefers that.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auth0/go-auth0/management"
)

// DeliveriesPerPage is how many deliveries [Client.ListDeliveries] asks for
// when take is 0: Auth0's documented default.
const DeliveriesPerPage = 50

// Delivery statuses Auth0 reports.
const (
	DeliveryFailed   = "failed"
	DeliveryRetrying = "retrying"
)

// Delivery is one delivery of an Event Streams event that Auth0 keeps
// because it failed.
type Delivery struct {
	// ID is the event's id ("evt_…").
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	Status    string `json:"status"`
	// Event is the CloudEvent as Auth0 tried to deliver it, undecoded: a
	// numeric identity user_id keeps every digit for the caller to decode
	// with json.Number.
	Event json.RawMessage `json:"event"`
}

// DeliveryFilter selects deliveries. Zero fields do not filter.
type DeliveryFilter struct {
	// From (inclusive) and To (exclusive) bound the event time. Auth0
	// refuses sub-second precision, so From is rounded down and To up to
	// the second: the filter never selects less than asked.
	From, To   time.Time
	EventTypes []string
	Statuses   []string
}

func (f DeliveryFilter) options() []management.RequestOption {
	var opts []management.RequestOption
	if len(f.EventTypes) > 0 {
		opts = append(opts, management.WithEventTypes(f.EventTypes...))
	}
	if len(f.Statuses) > 0 {
		opts = append(opts, management.Parameter("statuses", strings.Join(f.Statuses, ",")))
	}
	if from := f.dateFrom(); from != "" {
		opts = append(opts, management.Parameter("date_from", from))
	}
	if to := f.dateTo(); to != "" {
		opts = append(opts, management.Parameter("date_to", to))
	}
	return opts
}

func (f DeliveryFilter) dateFrom() string {
	if f.From.IsZero() {
		return ""
	}
	return f.From.UTC().Truncate(time.Second).Format(time.RFC3339)
}

func (f DeliveryFilter) dateTo() string {
	if f.To.IsZero() {
		return ""
	}
	t := f.To.UTC()
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t.Format(time.RFC3339)
}

// deliveryPage is the list's answer. Auth0 answers
// {"deliveries":[…],"next":"…"} (what go-auth0's EventDeliveryList
// decodes); its reference shows a bare array, which is accepted too, as
// one last page.
type deliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	Next       string     `json:"next"`
}

func (p *deliveryPage) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		p.Next = ""
		return json.Unmarshal(b, &p.Deliveries)
	}
	type plain deliveryPage
	return json.Unmarshal(b, (*plain)(p))
}

// ListDeliveries returns one page of the deliveries of an event stream
// that f selects, oldest first as Auth0 lists them, and the token of the
// next page. token is "" for the first page and then the previous answer's
// next; take is 1 to 100, 0 meaning [DeliveriesPerPage]. Auth0 returns a
// next token even with the last page, so the list ends at an empty page (or
// an empty token).
//
// It calls the endpoint go-auth0's EventStreamManager.ListDeliveries calls,
// with the same options, through the client's management.Management, but
// decodes the events itself: the SDK's DeliveryEvent.Data is a
// map[string]interface{} decoded into float64s, which would round a numeric
// identity user_id (a Twitter id has 19 digits).
//
// An unknown stream is [ErrNotFound]; other errors are classified as for
// [Client.GetUser].
func (c *Client) ListDeliveries(ctx context.Context, streamID string, f DeliveryFilter, token string, take int) ([]Delivery, string, error) {
	op := fmt.Sprintf("list failed deliveries of event stream %s", streamID)
	if take == 0 {
		take = DeliveriesPerPage
	}
	switch {
	case streamID == "":
		return nil, "", fmt.Errorf("%s: empty stream id: %w", op, ErrPermanent)
	case take < 1 || take > 100:
		return nil, "", fmt.Errorf("%s: take %d: want 1 to 100: %w", op, take, ErrPermanent)
	case !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To):
		return nil, "", fmt.Errorf("%s: empty window: %w", op, ErrPermanent)
	}
	opts := append(f.options(), management.Take(take))
	if token != "" {
		opts = append(opts, management.From(token))
	}
	var page deliveryPage
	if err := c.get(ctx, c.m.URI("event-streams", streamID, "deliveries"), &page, opts...); err != nil {
		if errors.Is(err, ErrNotFound) {
			// ErrNotFound's text speaks of a user; say what is missing.
			return nil, "", fmt.Errorf("%s: no such event stream: %w", op, err)
		}
		return nil, "", fmt.Errorf("%s: %w", op, err)
	}
	if len(page.Deliveries) == 0 {
		page.Next = ""
	}
	return page.Deliveries, page.Next, nil
}

// Redeliver asks Auth0 to deliver one failed event of a stream again
// (go-auth0's EventStreamManager.Redeliver). Auth0 accepts and delivers
// later. An unknown stream or event is [ErrNotFound].
func (c *Client) Redeliver(ctx context.Context, streamID, eventID string) error {
	if streamID == "" || eventID == "" {
		return fmt.Errorf("redeliver event %q of stream %q: empty id: %w", eventID, streamID, ErrPermanent)
	}
	err := c.call(ctx, func(ctx context.Context) error {
		return c.m.EventStream.Redeliver(ctx, streamID, eventID)
	})
	if err != nil {
		return fmt.Errorf("redeliver event %s of stream %s: %w", eventID, streamID, err)
	}
	return nil
}

// RedeliverMany asks Auth0 to deliver again every failed event of a stream
// that f selects (go-auth0's EventStreamManager.RedeliverMany, whose
// request carries no statuses: f.Statuses must be empty). An unknown stream
// is [ErrNotFound].
func (c *Client) RedeliverMany(ctx context.Context, streamID string, f DeliveryFilter) error {
	if streamID == "" || len(f.Statuses) > 0 {
		return fmt.Errorf("redeliver failed events of stream %q: want a stream id and no statuses: %w", streamID, ErrPermanent)
	}
	req := &management.BulkRedeliverRequest{}
	if len(f.EventTypes) > 0 {
		req.EventTypes = &f.EventTypes
	}
	if s := f.dateFrom(); s != "" {
		req.DateFrom = &s
	}
	if s := f.dateTo(); s != "" {
		req.DateTo = &s
	}
	err := c.call(ctx, func(ctx context.Context) error {
		return c.m.EventStream.RedeliverMany(ctx, streamID, req)
	})
	if err != nil {
		return fmt.Errorf("redeliver failed events of stream %s: %w", streamID, err)
	}
	return nil
}
