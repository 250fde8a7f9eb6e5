package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/schemas"
)

// RecoverDeliveries does one pass over the failed user.created deliveries
// of Config.StreamID whose events were sent in [checkpoint − Lookback (or
// Since), Until), and publishes each event the ledger does not know as
// ingest's Event Streams receiver would have (the same normalisation, so
// trigger user.created, and the same Nats-Msg-Id), on source reconcile.
// Auth0 filters deliveries by the second,
// so the window is whole seconds. The checkpoint (under
// [DeliveriesCheckpointKey]) moves only once every page is done. Errors are
// those of [Reconciler.Sweep]; an unknown stream is auth0api.ErrNotFound.
func (r *Reconciler) RecoverDeliveries(ctx context.Context) (Result, error) {
	if r.deliveries == nil || r.cfg.StreamID == "" {
		return Result{}, errors.New("reconcile deliveries: the reconciler was built without Deliveries or a stream id")
	}
	return r.round(ctx, roundSpec{
		name: "reconcile deliveries", key: DeliveriesCheckpointKey(r.cfg.StreamID),
		align: func(t time.Time) time.Time { return t.UTC().Truncate(time.Second) },
		body:  r.recover,
	})
}

// recover pages through the failed deliveries by Auth0's next token.
func (r *Reconciler) recover(ctx context.Context, res *Result) error {
	f := auth0api.DeliveryFilter{
		From: res.From, To: res.Until,
		EventTypes: []string{events.EventStreamUserCreated}, Statuses: []string{auth0api.DeliveryFailed},
	}
	token := ""
	for {
		var page []auth0api.Delivery
		var next string
		err := r.retry(ctx, &res.Counts, "list deliveries", auth0api.IsTransient, func(ctx context.Context) error {
			if err := r.limiter.Wait(ctx); err != nil {
				return fmt.Errorf("rate limiter: %w", err)
			}
			res.Requests++
			var err error
			page, next, err = r.deliveries.ListDeliveries(ctx, r.cfg.StreamID, f, token, 0)
			return err
		})
		if err != nil {
			return err
		}
		signups := make([]events.SignupData, 0, len(page))
		for _, d := range page {
			s, ok := r.signup(ctx, res, d)
			if ok {
				signups = append(signups, s)
			}
		}
		if err := r.page(ctx, res, events.SourceReconcile, signups); err != nil {
			return err
		}
		// Auth0 gives a next token with the last page too: the list ends
		// at an empty page. A token that does not move would loop.
		if len(page) == 0 || next == "" || next == token {
			return nil
		}
		token = next
	}
}

// signup checks and normalises a delivery's event as ingest's receiver
// does: valid against the Event Streams schema, type user.created, not a
// test delivery. Anything else is counted (listed, and ignored or invalid)
// and skipped: it is no signup, and retrying cannot change it.
func (r *Reconciler) signup(ctx context.Context, res *Result, d auth0api.Delivery) (events.SignupData, bool) {
	dec := json.NewDecoder(bytes.NewReader(d.Event))
	dec.UseNumber()
	var doc any
	err := dec.Decode(&doc)
	if err == nil {
		err = r.schemas.Validate(schemas.Auth0EventStream, doc)
	}
	if err != nil {
		res.Listed++
		res.Invalid++
		// The field, not the message: a schema message may quote the value.
		var fe *schemas.FieldError
		if errors.As(err, &fe) {
			r.log.WarnContext(ctx, "failed delivery with an invalid event, skipped", "delivery_id", d.ID, "field", fe.Field)
		} else {
			r.log.WarnContext(ctx, "failed delivery with an undecodable event, skipped", "delivery_id", d.ID)
		}
		return events.SignupData{}, false
	}
	ev := doc.(map[string]any) // the schema requires an object
	if !events.IsEventStreamSignup(ev) {
		res.Listed++
		res.Ignored++
		r.log.DebugContext(ctx, "failed delivery that is not a signup, skipped", "delivery_id", d.ID, "event_type", d.EventType)
		return events.SignupData{}, false
	}
	return events.EventStreamSignup(ev, r.cfg.Tenant), true
}
