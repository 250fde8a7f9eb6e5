package importer

import (
	"context"
	"errors"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
)

// The fetch loop: workers pull batches while the breaker lets them.

func (im *Importer) worker(ctx context.Context) {
	for ctx.Err() == nil {
		if !im.awaitBreaker(ctx) {
			return
		}
		batch, err := im.cons.Fetch(im.cfg.BatchSize, jetstream.FetchMaxWait(im.cfg.BatchWindow))
		if err != nil {
			im.log.DebugContext(ctx, "fetch failed", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			if err := batch.Error(); err != nil {
				im.log.DebugContext(ctx, "fetch ended", "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		im.process(ctx, msgs)
	}
}

// awaitBreaker blocks while the breaker is open, so an outage burns no
// deliveries. Once the open period passes it sends one probe (a cheap
// look-up) instead of a batch; success closes the breaker. It returns false
// when ctx ends.
func (im *Importer) awaitBreaker(ctx context.Context) bool {
	for {
		switch im.guard.state() {
		case gobreaker.StateClosed:
			return true
		case gobreaker.StateHalfOpen:
			// One worker probes; the others keep waiting.
			if im.probing.TryLock() {
				err := im.guard.do(ctx, "probe", func(ctx context.Context) error {
					_, err := im.accounts.GetUsers(ctx, []auth.UserIdentifier{auth.UIDIdentifier{UID: "signupsync-breaker-probe"}})
					return classifyFirebase("probe", err)
				})
				im.probing.Unlock()
				if !errors.Is(err, ErrBreakerOpen) {
					im.metrics.probe(err == nil)
				}
				if err == nil {
					im.log.InfoContext(ctx, "firebase reachable again; resuming")
					return true
				}
			}
		}
		if !sleep(ctx, min(im.cfg.BreakerOpenFor/5, 250*time.Millisecond)) {
			return false
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
