package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"

	"github.com/signupsync/signupsync/events"
)

// finish carries out the decision of a primary item and its dups: the
// ledger is written before anything is acknowledged, and a dead letter is
// durable in SIGNUPS_DLQ before the original is terminated.
func (im *Importer) finish(ctx context.Context, it *item) {
	group := append([]*item{it}, it.dups...)
	defer func() {
		for _, g := range group {
			g.span.End()
		}
	}()
	switch it.decision {
	case settle:
		le, err := im.recordLedger(ctx, it, it.outcome, it.reason, it.detail, it.fbUID)
		if err != nil {
			it.retry(err, 0)
			im.retryAll(ctx, group)
			return
		}
		// The user was deleted in Auth0 while this import ran (lifecycle.go).
		if le.Outcome == events.OutcomeDeleted && (it.outcome == events.OutcomeImported || le.Lifecycle != nil && le.Lifecycle.OrphanUID != "") {
			uid := it.fbUID
			if le.Lifecycle != nil && le.Lifecycle.OrphanUID != "" {
				uid = le.Lifecycle.OrphanUID
			}
			if !im.undoLateImport(ctx, it.ev.Subject, uid, nil) {
				it.retry(errors.New("account imported after its user was deleted not deleted yet"), 0)
				im.retryAll(ctx, group)
				return
			}
		}
		it.release = true
		for i, g := range group {
			reason := it.reason
			if i > 0 {
				reason = events.ReasonDuplicateDelivery
			}
			im.ack(g, it.outcome, reason)
		}
		im.logOutcome(it, slog.LevelDebug)
	case retry:
		if it.ambiguous {
			im.markAmbiguous(ctx, it)
		} else {
			it.release = true
		}
		im.retryAll(ctx, group)
	case dead:
		im.deadLetterGroup(ctx, group, it.reason, it.err)
	default:
		// Every path above decides; an undecided item is a bug. Retrying is
		// the safe answer: nothing is lost.
		it.retry(fmt.Errorf("importer: no decision for %s", it.ev.ID), 0)
		im.retryAll(ctx, group)
	}
}

// retryAll naks each message with its backoff delay, or dead-letters one
// that reached MaxDeliver.
func (im *Importer) retryAll(ctx context.Context, group []*item) {
	it := group[0]
	for _, g := range group {
		// The importer's own limit (the server's is unlimited): waiting for
		// a claim is not a failure and does not count.
		if g.meta != nil && int(g.meta.NumDelivered) >= im.cfg.Delivery.MaxDeliver && !errors.Is(it.err, errClaimBusy) {
			im.deadLetterGroup(ctx, []*item{g}, events.ReasonMaxDeliveries, it.err)
			continue
		}
		delay := im.cfg.Delivery.Delay(deliveries(g))
		if ra := max(it.delay, retryAfter(it.err)); ra > delay {
			delay = ra
		}
		cause := "transient"
		if errors.Is(it.err, errClaimBusy) {
			cause = "deferred"
		}
		im.metrics.nak(cause)
		g.span.SetAttributes(attribute.String("signupsync.retry", cause))
		if it.err != nil {
			recordError(g.span, it.err)
		}
		if err := g.msg.NakWithDelay(delay); err != nil {
			im.log.WarnContext(g.ctx, "nak failed; redelivered after AckWait", "err", err)
		}
	}
	im.log.InfoContext(it.ctx, "signup will be retried", "auth0_user_id", it.ev.Subject, "event_id", it.ev.ID, "err", it.err)
}

// deadLetterGroup writes the first message of group to SIGNUPS_DLQ, records
// the outcome, and terminates every message of the group.
func (im *Importer) deadLetterGroup(ctx context.Context, group []*item, reason string, cause error) {
	it := group[0]
	if err := im.writeDeadLetter(ctx, it, reason, cause); err != nil {
		// The copy is not durable: keep the original for a later attempt.
		// The consumer's server-side MaxDeliver is unlimited, so the server
		// delivers it again even past the importer's own limit.
		im.log.ErrorContext(it.ctx, "dead letter not written; retrying later", "err", err)
		for _, g := range group {
			im.metrics.nak("dead_letter_failed")
			_ = g.msg.NakWithDelay(im.cfg.Delivery.Delay(deliveries(g)))
		}
		return
	}
	im.metrics.deadLettered(reason)
	// An import that got no answer may still land: its uid claim keeps the
	// ambiguity mark until the horizon passes, dead letter or not.
	it.release = !it.ambiguous
	if it.ev.Subject != "" {
		if _, err := im.recordLedger(ctx, it, events.OutcomeDeadLettered, reason, errText(cause), ""); err != nil {
			im.log.WarnContext(it.ctx, "ledger not updated for dead letter", "err", err)
		}
	}
	for _, g := range group {
		g.outcome = events.OutcomeDeadLettered
		if cause != nil {
			recordError(g.span, cause)
		}
		g.span.SetAttributes(attribute.String("signupsync.outcome", string(events.OutcomeDeadLettered)), attribute.String("signupsync.reason", reason))
		if err := g.msg.Term(); err != nil {
			im.log.WarnContext(g.ctx, "term failed; the dead letter is written, redelivery will be recognised", "err", err)
		}
		im.metrics.outcome(events.OutcomeDeadLettered, reason)
	}
	it.outcome, it.reason = events.OutcomeDeadLettered, reason
	im.logOutcome(it, slog.LevelWarn)
}

func (im *Importer) ack(g *item, o events.Outcome, reason string) {
	g.outcome = o
	g.span.SetAttributes(attribute.String("signupsync.outcome", string(o)), attribute.String("signupsync.reason", reason))
	if err := g.msg.Ack(); err != nil {
		im.log.WarnContext(g.ctx, "ack failed; a redelivery will be settled from the ledger", "err", err)
	}
	im.metrics.outcome(o, reason)
}

func (im *Importer) recordLedger(ctx context.Context, it *item, o events.Outcome, reason, detail, fbUID string) (events.LedgerEntry, error) {
	srcs := []events.Source{it.source()}
	for _, d := range it.dups {
		srcs = append(srcs, d.source())
	}
	traceID := ""
	if sc := it.span.SpanContext(); sc.HasTraceID() {
		traceID = sc.TraceID().String()
	}
	return im.ledger.record(ctx, ledgerUpdate{
		read: it.read, userID: it.ev.Subject, outcome: o, reason: reason, detail: detail, firebaseUID: fbUID,
		sources: srcs, deliveries: 1 + len(it.dups), traceID: traceID, at: im.now(),
	})
}

func (im *Importer) logOutcome(it *item, level slog.Level) {
	if it.outcome != events.OutcomeImported && level < slog.LevelInfo {
		level = slog.LevelInfo
	}
	im.log.Log(it.ctx, level, "signup settled", "auth0_user_id", it.ev.Subject, "event_id", it.ev.ID,
		"outcome", string(it.outcome), "reason", it.reason, "firebase_uid", it.fbUID, "copies", 1+len(it.dups))
}

func deliveries(it *item) uint64 {
	if it.meta == nil {
		return 1
	}
	return it.meta.NumDelivered
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
