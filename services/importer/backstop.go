package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/events"
)

// maxDeliveriesAdvisory is the part of the server's MAX_DELIVERIES advisory
// the backstop reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// backstopSubject is where the server announces that the importer's
// consumer gave up on a message.
func backstopSubject(durable string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + events.StreamSignups + "." + durable
}

// startBackstop subscribes (one queue group across replicas) to the
// MAX_DELIVERIES advisory of the importer's consumer. The consumer is created
// with an unlimited server MaxDeliver, so the advisory fires only when
// someone configured the consumer otherwise; the server then never delivers
// the message again and records nothing, so the backstop dead-letters it
// (unless its user already has a decided outcome). Advisories are core NATS
// messages: one sent while no importer runs is not seen, which is why the
// unlimited MaxDeliver is the guarantee and this is only its backstop.
func (im *Importer) startBackstop(ctx context.Context) (*nats.Subscription, error) {
	nc := im.js.Conn()
	if nc == nil {
		return nil, errors.New("backstop: no NATS connection")
	}
	sub, err := nc.QueueSubscribe(backstopSubject(im.cfg.Delivery.Durable), "signupsync-importer-backstop", func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			im.log.WarnContext(ctx, "unreadable MAX_DELIVERIES advisory", "err", err)
			return
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.cfg.Delivery.AckWait)
		defer cancel()
		if err := im.rescue(bctx, adv); err != nil {
			im.log.ErrorContext(bctx, "signup past the server's MaxDeliver not dead-lettered", "stream_seq", adv.StreamSeq, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backstop subscribe: %w", err)
	}
	return sub, nil
}

// rescue dead-letters the message an advisory names and records the outcome.
func (im *Importer) rescue(ctx context.Context, adv maxDeliveriesAdvisory) error {
	stream, err := im.js.Stream(ctx, events.StreamSignups)
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.StreamSignups, err)
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("get message %d: %w", adv.StreamSeq, err)
	}
	ev, derr := events.Decode(raw.Data)
	if derr == nil {
		e, found, err := im.ledger.get(ctx, ev.Subject)
		if err != nil {
			return err
		}
		if found && e.Outcome.Decided() {
			im.log.InfoContext(ctx, "signup past the server's MaxDeliver already has an outcome", "auth0_user_id", ev.Subject, "outcome", string(e.Outcome))
			return nil
		}
	}
	from := &dlqOrigin{stream: events.StreamSignups, seq: adv.StreamSeq, deliveries: adv.Deliveries, published: raw.Time}
	cause := fmt.Errorf("the server stopped delivering after %d deliveries (consumer MaxDeliver)", adv.Deliveries)
	if err := publishDeadLetter(ctx, im.js, raw.Subject, raw.Data, raw.Header, from, events.ReasonMaxDeliveries, cause, im.now()); err != nil {
		return err
	}
	im.metrics.deadLettered(events.ReasonMaxDeliveries)
	im.metrics.outcome(events.OutcomeDeadLettered, events.ReasonMaxDeliveries)
	if derr != nil {
		return nil
	}
	_, err = im.ledger.record(ctx, ledgerUpdate{
		userID: ev.Subject, outcome: events.OutcomeDeadLettered, reason: events.ReasonMaxDeliveries, detail: cause.Error(),
		sources: []events.Source{ev.EventSource()}, deliveries: 1, at: im.now(),
	})
	im.log.WarnContext(ctx, "signup past the server's MaxDeliver dead-lettered", "auth0_user_id", ev.Subject, "event_id", ev.ID)
	return err
}
