package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"firebase.google.com/go/v4/auth"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// Import: the ImportUsers call for the candidates left after resolve.

// importUsers imports cands in one call and decides each from the per-user
// result. A permanent failure of the whole call is split into single-user
// calls so one bad user never fails the others.
func (im *Importer) importUsers(ctx context.Context, cands []*item) {
	im.importBatch(ctx, cands, importOp{
		build:   func(c *item) *auth.UserToImport { return toImport(c.uid, c.data, c.elig) },
		recheck: im.recheck,
	})
}

// importOp is what differs between importing signups and password users:
// how a user is built, the call's options, the reason recorded with
// imported, and how refused users are decided.
type importOp struct {
	build   func(*item) *auth.UserToImport
	opts    []auth.UserImportOption
	reason  string
	recheck func(context.Context, []*item)
}

// importBatch is one ImportUsers call for cands: transient failures are
// retried (ambiguous ones marked on the uid claim), a permanent failure of
// the call is split into single users, users Firebase refused go to
// op.recheck.
func (im *Importer) importBatch(ctx context.Context, cands []*item, op importOp) {
	if len(cands) == 0 {
		return
	}
	users := make([]*auth.UserToImport, len(cands))
	for i, c := range cands {
		users[i] = op.build(c)
	}
	var res *auth.UserImportResult
	err := im.firebase(ctx, "ImportUsers", func(ctx context.Context) error {
		r, err := im.accounts.ImportUsers(ctx, users, op.opts...)
		res = r
		return classifyFirebase("ImportUsers", err)
	})
	switch {
	case err != nil && IsTransient(err):
		amb := ambiguous(err)
		for _, c := range cands {
			c.retry(err, retryAfter(err))
			if amb {
				c.ambiguous, c.delay = true, max(c.delay, im.cfg.AmbiguousWait)
			}
		}
		return
	case err != nil && len(cands) > 1:
		for _, c := range cands {
			im.importBatch(ctx, []*item{c}, op)
		}
		return
	case err != nil:
		cands[0].deadLetter(events.ReasonFirebaseRejected, err)
		return
	}
	failed := map[int]string{}
	for _, e := range res.Errors {
		failed[e.Index] = e.Reason
	}
	var rejected []*item
	for i, c := range cands {
		if reason, bad := failed[i]; bad {
			c.err = errors.New(reason)
			rejected = append(rejected, c)
			continue
		}
		c.settle(events.OutcomeImported, op.reason, c.uid, "")
	}
	if len(rejected) > 0 {
		op.recheck(ctx, rejected)
	}
}

// recheck decides users Firebase refused one by one. A refusal because the
// account now exists (another replica, or a production Firebase race) is
// already_present when it carries this identity; anything else is a dead
// letter with Firebase's reason.
func (im *Importer) recheck(ctx context.Context, rejected []*item) {
	if len(rejected) == 0 {
		return
	}
	reasons := make(map[*item]error, len(rejected))
	for _, c := range rejected {
		reasons[c] = c.err
	}
	x := im.lookup(ctx, rejected)
	for _, c := range rejected {
		if c.decision != undecided {
			continue
		}
		if rec, ok := x.byUID[c.uid]; ok && x.byProvider[lookupKey(c.elig.FirebaseProvider, c.elig.Identity.UserID)] == rec.UID {
			c.settle(sameUIDAndProvider(rec, c.data.UserID))
			continue
		}
		// Another account took the email meanwhile (another replica): the
		// email policy decides, as if the look-up had seen it.
		if rec, ok := x.byEmail[strings.ToLower(c.data.Email)]; ok && c.data.Email != "" && rec.UID != c.uid {
			im.applyEmailPolicy(ctx, c, rec)
			continue
		}
		c.deadLetter(events.ReasonFirebaseRejected, fmt.Errorf("firebase refused user: %w", reasons[c]))
	}
}

// firebase runs one Firebase call in a client span, through the guard.
func (im *Importer) firebase(ctx context.Context, op string, fn func(context.Context) error) error {
	ctx, span := im.tracer.Start(ctx, "firebase "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", op)))
	defer span.End()
	err := im.guard.do(ctx, op, fn)
	if err != nil {
		recordError(span, err)
	}
	return err
}
