package exchange

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// HeaderAnonymousToken carries, optionally, the Firebase ID token of the
// guest (anonymous) session the app holds when it calls the exchange. With
// it, a successful exchange also asks the app's worker to merge the guest's
// data into the migrated account (events/accounts.go).
const HeaderAnonymousToken = "X-Firebase-Anonymous-Token"

// Results of the anonymous merge: the "error" codes of its 400 and 409
// answers, and the result label of the merge metric.
const (
	// ReasonAnonymousInvalid: malformed, tampered, of an unknown or
	// disabled account (400).
	ReasonAnonymousInvalid = "anonymous_token_invalid"
	// ReasonAnonymousExpired: the guest's ID token expired (400): get a
	// fresh one (getIdToken(true)) and call again.
	ReasonAnonymousExpired = "anonymous_token_expired"
	// ReasonAnonymousRevoked: the guest's tokens were revoked (400).
	ReasonAnonymousRevoked = "anonymous_token_revoked"
	// ReasonAnonymousWrongProject: an ID token of another Firebase project
	// (400): an app build pointing at another project.
	ReasonAnonymousWrongProject = "anonymous_token_wrong_project"
	// ReasonNotAnonymous: a valid ID token whose sign-in provider is not
	// "anonymous" (400).
	ReasonNotAnonymous = "not_anonymous"
	// ResultAnonymousAlreadyMerged: the guest was already merged into
	// another permanent account (409); no token is answered.
	ResultAnonymousAlreadyMerged = "anonymous_already_merged"
	// MergeRequested: a merge request was published.
	MergeRequested = "requested"
	// MergeAlreadyRequested: the request of this pair was already in the
	// stream (a retry): nothing published.
	MergeAlreadyRequested = "already_requested"
)

// Results of an acknowledgement the exchange consumed
// (--delete-merged-anonymous), the result label of its metric.
const (
	MergedDeleted      = "deleted"
	MergedAlreadyGone  = "already_gone"
	MergedNotAnonymous = "kept_not_anonymous"
	MergedUnknownPair  = "unknown_pair"
	MergedMalformed    = "malformed"
	MergedRetry        = "retry"
	MergedFailed       = "failed"
)

// MergeConfig configures the anonymous merge.
type MergeConfig struct {
	// DeleteAnonymous consumes the app's acknowledgements
	// (accounts.v1.merged.>) and deletes each merged anonymous account
	// that is still anonymous (--delete-merged-anonymous).
	DeleteAnonymous bool
	// Project is the Firebase project id the guests' ID tokens are of
	// (--firebase-project). The Admin SDK checks the audience either way;
	// this only names a token of another project in the answer
	// (anonymous_token_wrong_project rather than anonymous_token_invalid).
	Project string
}

// Guests is the part of the Firebase Auth client the merge uses: the
// guest's ID token, and the anonymous account's deletion. *auth.Client
// satisfies it.
type Guests interface {
	VerifyIDTokenAndCheckRevoked(ctx context.Context, idToken string) (*auth.Token, error)
	GetUser(ctx context.Context, uid string) (*auth.UserRecord, error)
	DeleteUser(ctx context.Context, uid string) error
}

// mergeDeps are the merge's collaborators, set by setupMerge.
type mergeDeps struct {
	guests  Guests // nil: Firebase does not verify ID tokens (a test double)
	project string
	stream  atomic.Pointer[jetstream.Stream]
}

func (s *Service) setupMerge(deps Deps) error {
	s.merge = &mergeDeps{guests: deps.Guests}
	if s.merge.guests == nil {
		s.merge.guests, _ = deps.Firebase.(Guests)
	}
	s.merge.project = s.cfg.Merge.Project
	if s.cfg.Merge.DeleteAnonymous && s.merge.guests == nil {
		return errors.New("exchange: Merge.DeleteAnonymous needs Deps.Guests (an *auth.Client)")
	}
	return nil
}

// guest is a verified anonymous session.
type guest struct{ uid string }

// verifyGuest reads HeaderAnonymousToken: no header is no merge (nil,
// nil); a token that is not a valid anonymous ID token of this project is a
// *guestError with its reason. Errors wrapping ErrUnavailable are Firebase
// failures a retry may not meet (the revocation check reads the account).
func (s *Service) verifyGuest(ctx context.Context, r *http.Request) (*guest, error) {
	vals := r.Header.Values(HeaderAnonymousToken)
	if len(vals) == 0 {
		return nil, nil
	}
	tok := strings.TrimSpace(vals[0])
	if len(vals) != 1 || tok == "" || len(tok) > 8<<10 {
		return nil, &guestError{ReasonAnonymousInvalid, errors.New("not exactly one anonymous token")}
	}
	if s.merge.guests == nil {
		return nil, fmt.Errorf("%w: anonymous merges need a Firebase client that verifies ID tokens", ErrDependency)
	}
	ctx, span := s.tracer.Start(ctx, "firebase VerifyIDTokenAndCheckRevoked", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", "VerifyIDTokenAndCheckRevoked")))
	defer span.End()
	vctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	t, err := s.merge.guests.VerifyIDTokenAndCheckRevoked(vctx, tok)
	switch {
	case err == nil:
	case auth.IsIDTokenExpired(err):
		return nil, &guestError{ReasonAnonymousExpired, err}
	case auth.IsIDTokenRevoked(err):
		return nil, &guestError{ReasonAnonymousRevoked, err}
	case auth.IsUserDisabled(err), auth.IsUserNotFound(err):
		return nil, &guestError{ReasonAnonymousInvalid, err}
	case auth.IsIDTokenInvalid(err):
		if aud := unverifiedAudience(tok); aud != "" && s.merge.project != "" && aud != s.merge.project {
			return nil, &guestError{ReasonAnonymousWrongProject, err}
		}
		return nil, &guestError{ReasonAnonymousInvalid, err}
	default:
		recordError(span, err)
		return nil, classifyFirebase("VerifyIDTokenAndCheckRevoked", err)
	}
	if t.Firebase.SignInProvider != "anonymous" {
		return nil, &guestError{ReasonNotAnonymous, fmt.Errorf("sign-in provider %q", t.Firebase.SignInProvider)}
	}
	return &guest{uid: t.UID}, nil
}

// guestError refuses the guest's token with a reason code (400).
type guestError struct {
	reason string
	err    error
}

func (e *guestError) Error() string { return "anonymous token: " + e.reason + ": " + e.err.Error() }
func (e *guestError) Unwrap() error { return e.err }

// unverifiedAudience reads aud from a JWT the SDK refused, only to tell a
// token of another project apart in the answer; it proves nothing.
func unverifiedAudience(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Aud string `json:"aud"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Aud
}

// accountsStream opens ACCOUNTS once (events.Ensure creates it).
func (s *Service) accountsStream(ctx context.Context) (jetstream.Stream, error) {
	if st := s.merge.stream.Load(); st != nil {
		return *st, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	st, err := s.js.Stream(ctx, events.StreamAccounts)
	if err != nil {
		return nil, fmt.Errorf("%w: open stream %s: %w", ErrUnavailable, events.StreamAccounts, err)
	}
	s.merge.stream.Store(&st)
	return st, nil
}

// requested returns the merge request stored for the guest, if any: the
// record that keeps a guest to one permanent account.
func (s *Service) requested(ctx context.Context, anonymousUID string) (events.AccountMerge, bool, error) {
	st, err := s.accountsStream(ctx)
	if err != nil {
		return events.AccountMerge{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	raw, err := st.GetLastMsgForSubject(ctx, events.MergeSubject(anonymousUID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return events.AccountMerge{}, false, nil
	}
	if err != nil {
		return events.AccountMerge{}, false, fmt.Errorf("%w: read merge request: %w", ErrUnavailable, err)
	}
	ev, err := events.DecodeAccountMerge(raw.Data)
	if err != nil {
		// Only the exchange publishes here; a request it cannot read still
		// holds the guest.
		return events.AccountMerge{}, true, fmt.Errorf("%w: stored merge request: %w", ErrDependency, err)
	}
	return ev, true, nil
}

// errAlreadyMerged: the guest's request names another permanent account.
var errAlreadyMerged = errors.New("anonymous account already merged into another account")

// checkMerge refuses, before a token is minted, a guest already merged
// into another permanent account.
func (s *Service) checkMerge(ctx context.Context, g *guest, uid string) error {
	ev, found, err := s.requested(ctx, g.uid)
	switch {
	case err != nil:
		return err
	case found && ev.Data.PermanentUID != uid:
		return errAlreadyMerged
	}
	return nil
}

// requestMerge publishes the guest's merge request (create-if-absent on its
// subject, Msg-Id of the pair) and reports MergeRequested or
// MergeAlreadyRequested; errAlreadyMerged when a concurrent exchange
// stored another pair first.
func (s *Service) requestMerge(ctx context.Context, g *guest, uid, sub string) (string, string, error) {
	msg, ev, err := events.NewAccountMergeMsg(events.AccountMergeData{AnonymousUID: g.uid, PermanentUID: uid, Auth0UserID: sub, At: s.now()}, s.now())
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrDependency, err)
	}
	ctx, span := s.tracer.Start(ctx, "publish "+events.MergeSubjectPrefix, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject),
			attribute.String("messaging.message.id", ev.ID),
		))
	defer span.End()
	s.prop.Inject(ctx, events.HeaderCarrier(msg.Header))
	pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamAccounts))
	switch {
	case err == nil && ack.Duplicate:
		return MergeAlreadyRequested, ev.ID, nil
	case err == nil:
		span.SetAttributes(attribute.String("messaging.nats.stream_sequence", strconv.FormatUint(ack.Sequence, 10)))
		return MergeRequested, ev.ID, nil
	case isWrongSequence(err):
		// The subject holds a request already: this pair's (a retry past
		// the duplicate window, or a concurrent one) or another's.
		prev, found, rerr := s.requested(ctx, g.uid)
		if rerr != nil {
			recordError(span, rerr)
			return "", ev.ID, rerr
		}
		if found && prev.Data.PermanentUID == uid {
			return MergeAlreadyRequested, ev.ID, nil
		}
		return "", ev.ID, errAlreadyMerged
	default:
		recordError(span, err)
		return "", ev.ID, fmt.Errorf("%w: publish merge request %s: %w", ErrUnavailable, ev.ID, err)
	}
}

// recordMerge adds the request to the permanent user's ledger entry
// (compare-and-set; additive, every other field as read). A person without
// a ledger entry (found in Firebase by uid or provider) gets none: the
// request in ACCOUNTS is the record, the ledger's copy is for the
// operator. Failures are logged, not answered: the request is durable.
func (s *Service) recordMerge(ctx context.Context, sub, anonymousUID, id string) {
	s.updateLedger(ctx, sub, func(e *events.LedgerEntry) bool {
		if e.Merge(anonymousUID) != nil {
			return false
		}
		e.Merges = append(e.Merges, events.MergeRecord{AnonymousUID: anonymousUID, RequestID: id, RequestedAt: s.now().UTC()})
		return true
	})
}

// updateLedger applies change to sub's existing entry by revision,
// retrying on a concurrent write; change reports whether it changed it.
func (s *Service) updateLedger(ctx context.Context, sub string, change func(*events.LedgerEntry) bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.CallTimeout)
	defer cancel()
	key := events.LedgerKey(sub)
	for attempt := 0; ; attempt++ {
		kve, err := s.ledger.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return
		}
		if err != nil {
			s.log.WarnContext(ctx, "merge not recorded in the ledger", "auth0_sub", sub, "err", err)
			return
		}
		e, err := events.UnmarshalLedger(kve.Value())
		if err != nil || !change(&e) {
			return // a corrupt entry is the importer's to repair
		}
		b, err := events.MarshalLedger(e)
		if err != nil {
			return
		}
		_, err = s.ledger.Update(ctx, key, b, kve.Revision())
		if err == nil {
			return
		}
		if !(errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) || attempt >= 8 {
			s.log.WarnContext(ctx, "merge not recorded in the ledger", "auth0_sub", sub, "err", err)
			return
		}
	}
}

// mergeOutcome is what the merge part of one exchange decided, for the
// metric, the span and the audit line.
type mergeOutcome struct {
	result, anonymousUID, id string
}

// auditMerge writes the merge's metric, span event and audit line (uids
// only). It is called for every exchange that carried a guest token.
func (s *Service) auditMerge(ctx context.Context, span trace.Span, o outcome) {
	m := o.merge
	if m == nil {
		return
	}
	if m.result == "" {
		m.result = o.result // the exchange itself failed (not_migrated, …)
	}
	s.metrics.mergeRequest(m.result)
	span.SetAttributes(attribute.String("signupsync.merge.result", m.result))
	if m.id != "" {
		span.SetAttributes(attribute.String("signupsync.merge.id", m.id))
	}
	attrs := []slog.Attr{slog.String("result", m.result)}
	if m.anonymousUID != "" {
		attrs = append(attrs, slog.String("anonymous_uid", m.anonymousUID))
	}
	if o.uid != "" {
		attrs = append(attrs, slog.String("firebase_uid", o.uid))
	}
	if m.id != "" {
		attrs = append(attrs, slog.String("request_id", m.id))
	}
	level := slog.LevelInfo
	if m.result == ResultAnonymousAlreadyMerged {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(ctx, level, "anonymous merge", attrs...)
}

// ConsumeMerged starts the durable consumer of the app's acknowledgements
// (events.ConsumerMerged on accounts.v1.merged.>, shared by the replicas)
// and returns its stop function, which drains it within the context it is
// given: messages in flight finish and are acked. [Service.Serve] calls it
// when Config.Merge.DeleteAnonymous is set. Each acknowledgement of a pair
// the exchange requested deletes the anonymous account if it is still
// anonymous, then is acked; see handleMerged for nak and term.
func (s *Service) ConsumeMerged(ctx context.Context) (stop func(context.Context), err error) {
	if s.merge.guests == nil {
		return nil, errors.New("merged consumer: no Firebase client to delete accounts with")
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	cons, err := s.js.CreateOrUpdateConsumer(cctx, events.StreamAccounts, events.MergedConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("merged consumer: %w", err)
	}
	root := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) { s.handleMerged(root, msg) })
	if err != nil {
		return nil, fmt.Errorf("merged consumer: %w", err)
	}
	return func(sctx context.Context) {
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-sctx.Done():
			cc.Stop()
		}
	}, nil
}

// handleMerged deletes the anonymous account of an acknowledged merge if
// it is still anonymous (no provider, no email, no phone), records it in
// the ledger and acks. A malformed acknowledgement, or one for a pair the
// exchange never requested, is termed; a transient failure is naked with
// the importer's backoff.
func (s *Service) handleMerged(root context.Context, msg jetstream.Msg) {
	ctx := s.prop.Extract(root, events.HeaderCarrier(msg.Headers()))
	ctx, cancel := context.WithTimeout(ctx, events.DefaultMergedAckWait-5*time.Second)
	defer cancel()
	ctx, span := s.tracer.Start(ctx, "anonymous merged", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()
	result, ack, err := s.settleMerged(ctx, msg)
	span.SetAttributes(attribute.String("signupsync.merged.result", result))
	if ack.ID != "" {
		span.SetAttributes(attribute.String("signupsync.merge.id", ack.ID))
	}
	s.metrics.merged(result)
	attrs := []slog.Attr{slog.String("result", result)}
	if ack.Data.AnonymousUID != "" {
		attrs = append(attrs, slog.String("anonymous_uid", ack.Data.AnonymousUID), slog.String("firebase_uid", ack.Data.PermanentUID))
	}
	level := slog.LevelInfo
	switch result {
	case MergedRetry:
		level = slog.LevelWarn
		meta, _ := msg.Metadata()
		delay := time.Second
		if meta != nil {
			delay = events.DefaultDelivery().Delay(meta.NumDelivered)
		}
		_ = msg.NakWithDelay(delay)
	case MergedMalformed, MergedUnknownPair, MergedFailed:
		level = slog.LevelWarn
		if result == MergedFailed {
			level = slog.LevelError
		}
		_ = msg.Term()
	default:
		_ = msg.DoubleAck(ctx)
	}
	if err != nil {
		recordError(span, err)
		attrs = append(attrs, slog.String("detail", err.Error()))
	}
	s.log.LogAttrs(ctx, level, "anonymous merged", attrs...)
}

func (s *Service) settleMerged(ctx context.Context, msg jetstream.Msg) (string, events.AccountMerged, error) {
	ack, err := events.DecodeAccountMerged(msg.Data())
	if err != nil {
		return MergedMalformed, events.AccountMerged{}, err
	}
	if msg.Subject() != events.MergedSubject(ack.Data.AnonymousUID) {
		return MergedMalformed, ack, errors.New("subject does not match the anonymous uid")
	}
	req, found, err := s.requested(ctx, ack.Data.AnonymousUID)
	switch {
	case errors.Is(err, ErrUnavailable):
		return MergedRetry, ack, err
	case err != nil:
		return MergedFailed, ack, err
	case !found || req.Data.PermanentUID != ack.Data.PermanentUID:
		// Only accounts the exchange asked to merge are ever deleted.
		return MergedUnknownPair, ack, errors.New("no merge request for this pair")
	}
	result, err := s.deleteAnonymous(ctx, ack.Data.AnonymousUID)
	if result == MergedRetry || result == MergedFailed {
		return result, ack, err
	}
	now := s.now().UTC()
	s.updateLedger(ctx, req.Data.Auth0UserID, func(e *events.LedgerEntry) bool {
		r := e.Merge(ack.Data.AnonymousUID)
		if r == nil {
			e.Merges = append(e.Merges, events.MergeRecord{AnonymousUID: ack.Data.AnonymousUID, RequestID: req.ID, RequestedAt: req.Data.At})
			r = &e.Merges[len(e.Merges)-1]
		}
		if !r.MergedAt.IsZero() {
			return false
		}
		r.MergedAt = ack.Data.At
		if result == MergedDeleted {
			r.AnonymousDeletedAt = now
		} else {
			r.Kept = result
		}
		return true
	})
	return result, ack, nil
}

// deleteAnonymous deletes uid if the account is still anonymous. Firebase
// has no conditional delete: an account linked between the read and the
// delete (milliseconds, after the app already merged it) would be lost;
// the app links guests before, not after, their merge.
func (s *Service) deleteAnonymous(ctx context.Context, uid string) (string, error) {
	gctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	rec, err := s.merge.guests.GetUser(gctx, uid)
	switch {
	case auth.IsUserNotFound(err):
		return MergedAlreadyGone, nil
	case err != nil:
		return mergedFailure(classifyFirebase("GetUser", err))
	}
	if rec.Email != "" || rec.PhoneNumber != "" || len(rec.ProviderUserInfo) > 0 {
		return MergedNotAnonymous, nil
	}
	dctx, cancel2 := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel2()
	err = s.merge.guests.DeleteUser(dctx, uid)
	switch {
	case err == nil:
		return MergedDeleted, nil
	case auth.IsUserNotFound(err):
		return MergedAlreadyGone, nil
	}
	return mergedFailure(classifyFirebase("DeleteUser", err))
}

func mergedFailure(err error) (string, error) {
	if errors.Is(err, ErrUnavailable) {
		return MergedRetry, err
	}
	return MergedFailed, err
}
