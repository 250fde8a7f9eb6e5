package exchange

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/errorutils"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// Where an exchange found the Firebase account, in metrics and audit logs.
const (
	ViaLedger           = "ledger"
	ViaFirebaseUID      = "firebase_uid"
	ViaFirebaseProvider = "firebase_provider"
	ViaImported         = "imported"
)

// HeaderRequestedBy names the role that published a signup on a user's
// behalf. Signups the exchange publishes carry "exchange" (their source is
// reconcile: events has no exchange source, and the importer treats both
// alike).
const HeaderRequestedBy = "Signupsync-Requested-By"

// TriggerExchange is the trigger recorded in the signups the exchange
// publishes.
const TriggerExchange = "exchange"

// Errors of the account look-up.
var (
	// ErrNotMigrated is matched by the error for a person this pipeline
	// does not import (a database user waiting for the password export, a
	// linked or enterprise account) or whose import ended in another
	// outcome (conflict, dead letter).
	ErrNotMigrated = errors.New("account not migrated")
	// ErrImportPending means the on-the-spot import did not reach the
	// ledger within ImportWait (the importer is slow or not running).
	ErrImportPending = errors.New("import did not finish in time")
	// ErrUnavailable wraps failures of JetStream, Firebase or Auth0 that a
	// retry may not meet.
	ErrUnavailable = errors.New("dependency unavailable")
	// ErrDependency wraps a permanent refusal of a look-up (Firebase
	// permission denied, a misconfigured project): retrying does not help.
	ErrDependency = errors.New("dependency refused the request")
	// ErrAccountNotFound is matched by the error for a ledger entry naming
	// a Firebase account that does not exist (deleted since the import).
	ErrAccountNotFound = errors.New("firebase account not found")
	// ErrIdentityMismatch is matched by the error for a ledger entry naming
	// a Firebase account that is neither the subject's policy uid nor
	// carries the subject's provider identity.
	ErrIdentityMismatch = errors.New("firebase account lacks the caller's identity")
)

// Reasons of a failed account check, in the check metric and the answer.
const (
	CheckAccountNotFound  = "account_not_found"
	CheckIdentityMismatch = "identity_mismatch"
)

// checkError is a failed account check: the ledger (or the importer, for an
// on-the-spot import) named uid, and the account there is not the caller's.
// Its text names uids only.
type checkError struct {
	reason, uid, via string
}

func (e *checkError) Error() string {
	if e.reason == CheckAccountNotFound {
		return fmt.Sprintf("%s names firebase account %s, which does not exist", e.via, e.uid)
	}
	return fmt.Sprintf("%s names firebase account %s, which is not the caller's uid and lacks the caller's provider identity", e.via, e.uid)
}

func (e *checkError) Is(target error) bool {
	return (target == ErrAccountNotFound && e.reason == CheckAccountNotFound) ||
		(target == ErrIdentityMismatch && e.reason == CheckIdentityMismatch)
}

type notMigratedError struct{ reason string }

func (e *notMigratedError) Error() string        { return "account not migrated: " + e.reason }
func (e *notMigratedError) Is(target error) bool { return target == ErrNotMigrated }

// skipReasons are the ledger reasons that say the importer will not import
// the person whatever happens: no Management API call can change them.
var skipReasons = map[string]bool{
	events.ReasonLinkedIdentities: true, events.ReasonDatabaseConnection: true, events.ReasonPasswordless: true,
	events.ReasonEnterpriseConnection: true, events.ReasonUnsupportedProvider: true, events.ReasonNoIdentity: true,
}

type account struct{ uid, via string }

// resolveShared runs one look-up per subject at a time: concurrent
// exchanges of one person share it (and so one on-the-spot import). The
// look-up is detached from the first caller's cancellation and bounded on
// its own; each caller stops waiting when its own context ends.
func (s *Service) resolveShared(ctx context.Context, sub string) (account, error) {
	ch := s.flight.DoChan(sub, func() (any, error) {
		// Up to seven calls (ledger, Firebase twice, Auth0, watch, publish,
		// the account check) and the wait for the importer.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ImportWait+7*s.cfg.CallTimeout)
		defer cancel()
		return s.resolve(fctx, sub)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return account{}, r.Err
		}
		return r.Val.(account), nil
	case <-ctx.Done():
		return account{}, ctx.Err()
	}
}

// resolve finds the Firebase account of an Auth0 user: the ledger (a final
// outcome names the uid), Firebase by the policy uid, then — with the
// profile from the Management API — eligibility and Firebase by provider
// identity; an eligible person found nowhere is imported on the spot. A uid
// named by the ledger is checked in Firebase before it is answered
// ([Service.check]); the look-ups by uid and identity prove themselves.
func (s *Service) resolve(ctx context.Context, sub string) (account, error) {
	entry, found, err := s.readLedger(ctx, sub)
	if err != nil {
		return account{}, err
	}
	if found && entry.Outcome.Final() && entry.FirebaseUID != "" {
		return s.check(ctx, sub, account{entry.FirebaseUID, ViaLedger})
	}
	// An account under the policy uid is the person's (the bulk export and
	// the password export import under it too) — unless the importer found
	// that account and recorded a conflict for review; then only the
	// provider identity counts.
	if !found || entry.Outcome != events.OutcomeConflict {
		rec, err := s.lookup(ctx, auth.UIDIdentifier{UID: s.cfg.UIDPolicy.FirebaseUID(sub)})
		if err != nil {
			return account{}, err
		}
		if rec != nil {
			return account{rec.UID, ViaFirebaseUID}, nil
		}
	}
	if found && entry.Outcome == events.OutcomeSkipped && skipReasons[entry.Reason] {
		return account{}, &notMigratedError{entry.Reason}
	}
	data, err := s.getUser(ctx, sub)
	if errors.Is(err, auth0api.ErrNotFound) {
		return account{}, &notMigratedError{events.ReasonDeletedInAuth0}
	}
	if err != nil {
		return account{}, err
	}
	elig := events.Classify(data, s.providers)
	if !elig.OK {
		return account{}, &notMigratedError{elig.Reason}
	}
	rec, err := s.lookup(ctx, auth.ProviderIdentifier{ProviderID: elig.FirebaseProvider, ProviderUID: elig.Identity.UserID})
	if err != nil {
		return account{}, err
	}
	if rec != nil {
		return account{rec.UID, ViaFirebaseProvider}, nil
	}
	acct, err := s.importNow(ctx, data)
	if err != nil {
		return account{}, err
	}
	return s.check(ctx, sub, acct)
}

// check proves that acct, named by the ledger, is the subject's Firebase
// account before a token is minted for it: the account exists, and it is
// the uid the uid policy derives from the subject or it carries the
// subject's provider identity (the provider id and the provider's user id
// of the subject, "google-oauth2|123" → google.com/123). A deleted account
// would otherwise be created blank at sign-in, and a wrong entry would hand
// out someone else's uid. It costs one Firebase look-up, bounded by
// CallTimeout. Errors match ErrAccountNotFound, ErrIdentityMismatch,
// ErrUnavailable (transient) or ErrDependency.
func (s *Service) check(ctx context.Context, sub string, acct account) (account, error) {
	if acct.uid == "" || len(acct.uid) > 128 { // no Firebase uid looks like this
		return account{}, &checkError{CheckAccountNotFound, acct.uid, acct.via}
	}
	rec, err := s.lookup(ctx, auth.UIDIdentifier{UID: acct.uid})
	if err != nil {
		return account{}, err
	}
	if rec == nil {
		return account{}, &checkError{CheckAccountNotFound, acct.uid, acct.via}
	}
	if rec.UID == s.cfg.UIDPolicy.FirebaseUID(sub) {
		return acct, nil
	}
	if ids := events.DeriveIdentity(sub, "", "", ""); len(ids) == 1 {
		if fp, ok := s.providers[ids[0].Provider]; ok {
			for _, p := range rec.ProviderUserInfo {
				if p != nil && p.ProviderID == fp && p.UID == ids[0].UserID {
					return acct, nil
				}
			}
		}
	}
	return account{}, &checkError{CheckIdentityMismatch, acct.uid, acct.via}
}

func (s *Service) readLedger(ctx context.Context, sub string) (events.LedgerEntry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	kve, err := s.ledger.Get(ctx, events.LedgerKey(sub))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.LedgerEntry{}, false, nil
	}
	if err != nil {
		return events.LedgerEntry{}, false, fmt.Errorf("%w: ledger get: %w", ErrUnavailable, err)
	}
	e, err := events.UnmarshalLedger(kve.Value())
	if err != nil {
		return events.LedgerEntry{}, false, nil // a corrupt entry says nothing
	}
	return e, true, nil
}

// lookup returns the Firebase account matching id, or nil.
func (s *Service) lookup(ctx context.Context, id auth.UserIdentifier) (*auth.UserRecord, error) {
	ctx, span := s.tracer.Start(ctx, "firebase GetUsers", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", "GetUsers")))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	res, err := s.fb.GetUsers(ctx, []auth.UserIdentifier{id})
	if err != nil {
		recordError(span, err)
		return nil, classifyFirebase("GetUsers", err)
	}
	if len(res.Users) == 0 {
		return nil, nil
	}
	return res.Users[0], nil
}

func (s *Service) getUser(ctx context.Context, sub string) (events.SignupData, error) {
	ctx, span := s.tracer.Start(ctx, "auth0 get user", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	d, err := s.users.GetUser(ctx, sub)
	switch {
	case errors.Is(err, auth0api.ErrNotFound):
		return events.SignupData{}, err
	case err != nil:
		recordError(span, err)
		return events.SignupData{}, fmt.Errorf("%w: auth0 get user: %w", ErrUnavailable, err)
	}
	return d, nil
}

// importNow publishes the signup the way every other publisher does
// (events.NewMsg: same subject family, same Nats-Msg-Id) and waits, at most
// ImportWait after the publish, for the importer to record it in the
// ledger. The watch starts before the publish so the importer's write
// cannot be missed; it first delivers the entry as it stands, which tells a
// fresh outcome from an old one by revision.
func (s *Service) importNow(ctx context.Context, d events.SignupData) (account, error) {
	ctx, span := s.tracer.Start(ctx, "import on the spot")
	defer span.End()
	w, err := s.ledger.Watch(ctx, events.LedgerKey(d.UserID))
	if err != nil {
		recordError(span, err)
		return account{}, fmt.Errorf("%w: watch ledger: %w", ErrUnavailable, err)
	}
	defer func() { _ = w.Stop() }()

	var prior *events.LedgerEntry
	var priorRev uint64
	initial := time.NewTimer(s.cfg.CallTimeout)
	defer initial.Stop()
current:
	for {
		select {
		case kve, ok := <-w.Updates():
			if !ok {
				return account{}, fmt.Errorf("%w: ledger watch closed", ErrUnavailable)
			}
			if kve == nil {
				break current
			}
			if e, ok := ledgerEntry(kve); ok {
				if e.Outcome.Final() {
					return s.settledAccount(e, ViaLedger), nil
				}
				prior, priorRev = &e, kve.Revision()
			}
		case <-initial.C:
			return account{}, fmt.Errorf("%w: ledger watch did not start", ErrUnavailable)
		case <-ctx.Done():
			return account{}, ctx.Err()
		}
	}

	dup, err := s.publish(ctx, d)
	if err != nil {
		recordError(span, err)
		return account{}, err
	}
	span.SetAttributes(attribute.Bool("signupsync.duplicate", dup))
	wait := time.NewTimer(s.cfg.ImportWait)
	defer wait.Stop()
	for {
		select {
		case kve, ok := <-w.Updates():
			if !ok {
				return account{}, s.waitEnded(span, prior)
			}
			if kve == nil {
				continue
			}
			e, ok := ledgerEntry(kve)
			if !ok {
				continue
			}
			if e.Outcome.Final() {
				return s.settledAccount(e, ViaImported), nil
			}
			if kve.Revision() > priorRev {
				return account{}, &notMigratedError{reasonOf(e)}
			}
		case <-wait.C:
			return account{}, s.waitEnded(span, prior)
		case <-ctx.Done():
			return account{}, s.waitEnded(span, prior)
		}
	}
}

// waitEnded is the answer when the ledger did not change in time: an
// earlier outcome that did not import the person stands (the signup was
// already in the stream, so the importer had its say); otherwise the import
// is pending.
func (s *Service) waitEnded(span trace.Span, prior *events.LedgerEntry) error {
	if prior != nil {
		return &notMigratedError{reasonOf(*prior)}
	}
	span.SetStatus(codes.Error, "import pending")
	return ErrImportPending
}

func (s *Service) settledAccount(e events.LedgerEntry, via string) account {
	uid := e.FirebaseUID
	if uid == "" {
		uid = s.cfg.UIDPolicy.FirebaseUID(e.Auth0UserID)
	}
	return account{uid, via}
}

func ledgerEntry(kve jetstream.KeyValueEntry) (events.LedgerEntry, bool) {
	if kve.Operation() != jetstream.KeyValuePut {
		return events.LedgerEntry{}, false
	}
	e, err := events.UnmarshalLedger(kve.Value())
	return e, err == nil
}

func reasonOf(e events.LedgerEntry) string {
	if e.Reason != "" {
		return string(e.Outcome) + ":" + e.Reason
	}
	return string(e.Outcome)
}

// publish makes the signup durable in SIGNUPS and reports whether JetStream
// already held it.
func (s *Service) publish(ctx context.Context, d events.SignupData) (bool, error) {
	d.Tenant, d.Trigger, d.Partial = s.cfg.Tenant, TriggerExchange, false
	if d.ConnectionStrategy == "" && len(d.Identities) == 1 {
		d.ConnectionStrategy = d.Identities[0].Provider
	}
	msg, ev, err := events.NewMsg(events.SourceReconcile, d, s.now())
	if errors.Is(err, events.ErrInvalidUser) {
		// The Management API's own profile contradicts itself: nothing to
		// import, whatever a retry does.
		return false, &notMigratedError{events.ReasonInvalidIdentity}
	}
	if err != nil {
		return false, err
	}
	msg.Header.Set(HeaderRequestedBy, "exchange")
	ctx, span := s.tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject),
			attribute.String("messaging.message.id", ev.ID),
		))
	defer span.End()
	s.prop.Inject(ctx, events.HeaderCarrier(msg.Header))
	pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamSignups))
	if err != nil {
		recordError(span, err)
		return false, fmt.Errorf("%w: publish signup %s: %w", ErrUnavailable, ev.ID, err)
	}
	span.SetAttributes(attribute.String("messaging.nats.stream_sequence", strconv.FormatUint(ack.Sequence, 10)))
	return ack.Duplicate, nil
}

// classifyFirebase wraps a failed Firebase call: transient (unavailable,
// internal, quota, deadline, aborted, unknown, any transport failure) as
// ErrUnavailable, so the caller gets 503 and Retry-After; anything else as
// ErrDependency.
func classifyFirebase(op string, err error) error {
	var ue *url.Error
	var ne net.Error
	switch {
	case errorutils.IsUnavailable(err), errorutils.IsInternal(err), errorutils.IsResourceExhausted(err),
		errorutils.IsDeadlineExceeded(err), errorutils.IsAborted(err), errorutils.IsUnknown(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &ue), errors.As(err, &ne):
		return fmt.Errorf("%w: firebase %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: firebase %s: %w", ErrDependency, op, err)
}

func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
