package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"firebase.google.com/go/v4/auth"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
)

// PathPassword is the password fallback (migration on next login): the app
// sends the email and password its Firebase sign-in refused, once.
const PathPassword = "/v1/session/password"

// ClaimAuth0UserID is the account-level custom claim naming the Auth0 user
// an account was made for. The importer sets it on every account it
// creates (services/importer ClaimAuth0ID); the password fallback sets it
// too, and takes an existing account under the person's uid as its own
// only when the claim, or the ledger, says so.
const ClaimAuth0UserID = "auth0_user_id"

// Results of the password fallback besides the exchange's.
const (
	ResultInvalidCredentials = "invalid_credentials"
	ResultLoginBlocked       = "login_blocked"
	ResultMFARequired        = "mfa_required"
	ResultLoginDenied        = "login_denied"
	ResultAccountExists      = "account_exists"
	ResultEmailInUse         = "email_in_use"
	ResultPasswordRejected   = "password_rejected"
	ResultInvalidBody        = "invalid_body"
	ResultBodyTooLarge       = "body_too_large"
	ResultUnsupportedMedia   = "unsupported_media_type"
	ResultPasswordDisabled   = "password_fallback_disabled"
)

// Where the password fallback found or made the account.
const (
	ViaCreated     = "created"      // CreateUser made it now
	ViaPasswordSet = "password_set" // signupsync's account had no password; now it has
	ViaExisting    = "existing"     // signupsync's account already had a password
)

var passwordMessages = map[string]string{
	ResultInvalidCredentials: "wrong email or password",
	ResultLoginBlocked:       "this sign-in is blocked: sign in with Auth0 to unblock it",
	ResultMFARequired:        "multi-factor authentication is required: sign in with Auth0",
	ResultLoginDenied:        "this sign-in was refused: sign in with Auth0",
	ResultAccountExists:      "an account already exists for this person: use its sign-in methods or reset the password",
	ResultEmailInUse:         "the email belongs to another account: sign in to it, or with Auth0",
	ResultPasswordRejected:   "Firebase does not accept this password: reset it",
	ResultInvalidBody:        `send {"email": "...", "password": "..."} as JSON`,
	ResultBodyTooLarge:       "the body is too large",
	ResultUnsupportedMedia:   "send application/json",
	ResultPasswordDisabled:   "the password fallback is off: keep using the Auth0 sign-in",
}

// PasswordConfig configures POST /v1/session/password. The Auth0 domain,
// its HTTP client and the issuer are the exchange's (Config.Management,
// Config.Issuer): the ID token the grant answers is verified like the
// exchange's tokens, with the client id as audience.
type PasswordConfig struct {
	// Enabled is the kill switch: off, the endpoint answers 404
	// password_fallback_disabled and calls nothing.
	Enabled bool
	// Connection is the Auth0 database connection (the realm).
	Connection string
	// ClientID and ClientSecret of a confidential Auth0 application with
	// the Password grant enabled and "Trust Token Endpoint IP Header" on.
	ClientID     string
	ClientSecret string
	// EmailRate (per minute) and EmailBurst limit attempts per email, before
	// Auth0 is asked; IPRate and IPBurst per client address (IPv6 per /64).
	EmailRate  float64
	EmailBurst int
	IPRate     float64
	IPBurst    int
	// BodyLimit bounds the request body.
	BodyLimit int64
	// SettleWait bounds the wait for a concurrent request of the same
	// person to finish marking the account it just created.
	SettleWait time.Duration
}

// DefaultPasswordConfig is off, with the limits' defaults.
func DefaultPasswordConfig() PasswordConfig {
	return PasswordConfig{EmailRate: 5, EmailBurst: 5, IPRate: 30, IPBurst: 10, BodyLimit: 4 << 10, SettleWait: 3 * time.Second}
}

func (p PasswordConfig) validate() error {
	if !p.Enabled {
		return nil
	}
	var errs []error
	if p.Connection == "" {
		errs = append(errs, errors.New("exchange: Password.Connection is required with Password.Enabled: the Auth0 database connection"))
	}
	if p.ClientID == "" || p.ClientSecret == "" {
		errs = append(errs, errors.New("exchange: Password.ClientID and Password.ClientSecret are required with Password.Enabled"))
	}
	if p.EmailRate <= 0 || p.EmailBurst < 1 || p.IPRate <= 0 || p.IPBurst < 1 {
		errs = append(errs, errors.New("exchange: Password.EmailRate, Password.EmailBurst, Password.IPRate and Password.IPBurst must be positive"))
	}
	if p.BodyLimit < 256 || p.SettleWait <= 0 {
		errs = append(errs, errors.New("password body limit must be at least 256 bytes and the settle wait positive"))
	}
	return errors.Join(errs...)
}

// Accounts creates and updates Firebase accounts: the password fallback's
// only writes. *auth.Client satisfies it.
type Accounts interface {
	CreateUser(ctx context.Context, user *auth.UserToCreate) (*auth.UserRecord, error)
	UpdateUser(ctx context.Context, uid string, user *auth.UserToUpdate) (*auth.UserRecord, error)
}

// passwordDeps is what New builds for the password fallback.
type passwordDeps struct {
	tokenURL   string
	host       string
	client     *http.Client
	idVerifier *Verifier
	accounts   Accounts
	byEmail    *keyedLimiter
	byIP       *keyedLimiter
}

func (s *Service) setupPassword(deps Deps) error {
	p := s.cfg.Password
	if !p.Enabled {
		return nil
	}
	acc := deps.Accounts
	if acc == nil {
		acc, _ = deps.Firebase.(Accounts)
	}
	if acc == nil {
		return errors.New("exchange: the password fallback needs Deps.Accounts (an *auth.Client)")
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s.cfg.Management.Domain, "https://"), "/")
	client := &http.Client{}
	if s.cfg.Management.HTTPClient != nil {
		*client = *s.cfg.Management.HTTPClient
	}
	client.Timeout = s.cfg.CallTimeout
	// A redirect would carry the password elsewhere.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	vc := s.cfg.VerifierConfig()
	vc.Audience = p.ClientID
	s.pw = &passwordDeps{
		tokenURL: "https://" + host + "/oauth/token", host: host, client: client,
		idVerifier: &Verifier{cfg: vc, keys: s.verifier.keys, now: s.now},
		accounts:   acc,
		byEmail:    newKeyedLimiter(p.EmailRate, p.EmailBurst, s.cfg.LimiterKeys),
		byIP:       newKeyedLimiter(p.IPRate, p.IPBurst, s.cfg.LimiterKeys),
	}
	return nil
}

// handlePassword serves POST /v1/session/password. The password lives in
// this request's locals only: it is passed down as an argument to the Auth0
// call and to Firebase, never put in a struct that outlives the request,
// a log line, a span or a metric.
func (s *Service) handlePassword(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, span := s.tracer.Start(r.Context(), "password fallback")
	defer span.End()
	o := s.passwordFallback(ctx, w, r)
	s.respondPassword(w, o)

	s.metrics.password(o.result, time.Since(start))
	span.SetAttributes(attribute.String("signupsync.password.result", o.result), attribute.Int("http.response.status_code", o.status))
	attrs := []slog.Attr{slog.String("result", o.result), slog.Int("status", o.status)}
	if o.sub != "" {
		span.SetAttributes(attribute.String("signupsync.event_id", events.EventID(o.sub)))
		attrs = append(attrs, slog.String("auth0_sub", o.sub))
	}
	if o.uid != "" {
		span.SetAttributes(attribute.String("signupsync.exchange.via", o.via))
		attrs = append(attrs, slog.String("firebase_uid", o.uid), slog.String("via", o.via))
	}
	if o.err != nil {
		attrs = append(attrs, slog.String("detail", o.err.Error()))
	}
	attrs = append(attrs, slog.Int64("duration_ms", time.Since(start).Milliseconds()))
	level := slog.LevelInfo
	if o.status >= 500 {
		level = slog.LevelError
		span.RecordError(o.err)
		span.SetStatus(codes.Error, o.result)
	}
	s.log.LogAttrs(ctx, level, "password fallback", attrs...)
}

type passwordRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *Service) passwordFallback(ctx context.Context, w http.ResponseWriter, r *http.Request) outcome {
	if r.Method != http.MethodPost {
		return outcome{status: http.StatusMethodNotAllowed, result: ResultMethodNotAllowed}
	}
	if s.pw == nil {
		return outcome{status: http.StatusNotFound, result: ResultPasswordDisabled}
	}
	addr, hasAddr := clientAddr(r, s.cfg.ClientIPHeader)
	now := s.now()
	if ok, wait := s.pw.byIP.allow(clientKey(r, s.cfg.ClientIPHeader), now); !ok {
		return outcome{status: http.StatusTooManyRequests, result: ResultRateLimited, retryAfter: wait, err: errors.New("per-address limit")}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return outcome{status: http.StatusUnsupportedMediaType, result: ResultUnsupportedMedia}
	}
	req, o, ok := s.decodePassword(w, r)
	if !ok {
		return o
	}
	// The key is a digest: the limiter holds no email.
	sum := sha256.Sum256([]byte(strings.ToLower(req.Email)))
	if ok, wait := s.pw.byEmail.allow(hex.EncodeToString(sum[:16]), now); !ok {
		return outcome{status: http.StatusTooManyRequests, result: ResultRateLimited, retryAfter: wait, err: errors.New("per-email limit")}
	}
	from := ""
	if hasAddr {
		from = addr.String()
	}
	login, err := s.login(ctx, req.Email, req.Password, from)
	if err != nil {
		return loginOutcome(err, s.cfg.RetryAfter)
	}
	o = outcome{sub: login.sub}
	acct, err := s.passwordAccount(ctx, login, req.Password)
	if err != nil {
		o.err = err
		var ce *checkError
		if errors.As(err, &ce) {
			o.claimedUID, o.via = ce.uid, ce.via
			s.metrics.checkFailed(ce.reason, ce.via)
		}
		switch {
		case errors.Is(err, ErrAccountNotFound):
			o.status, o.result = http.StatusNotFound, ResultAccountNotFound
		case errors.Is(err, ErrIdentityMismatch):
			o.status, o.result = http.StatusConflict, ResultIdentityMismatch
		case errors.Is(err, errAccountExists):
			o.status, o.result = http.StatusConflict, ResultAccountExists
		case errors.Is(err, errEmailInUse):
			o.status, o.result = http.StatusConflict, ResultEmailInUse
		case errors.Is(err, errPasswordRejected):
			o.status, o.result = http.StatusConflict, ResultPasswordRejected
		case ctx.Err() != nil:
			o.status, o.result = 499, ResultCancelled
		case errors.Is(err, ErrDependency):
			o.status, o.result = http.StatusInternalServerError, ResultInternal
		default:
			o.status, o.result, o.retryAfter = http.StatusServiceUnavailable, ResultUnavailable, s.cfg.RetryAfter
		}
		return o
	}
	o.uid, o.via = acct.uid, acct.via
	mctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	tok, err := s.fb.CustomTokenWithClaims(mctx, acct.uid, map[string]any{ClaimExchange: true, ClaimAuth0Sub: login.sub})
	if err != nil {
		o.status, o.result, o.retryAfter, o.err = http.StatusServiceUnavailable, ResultUnavailable, s.cfg.RetryAfter, fmt.Errorf("%w: mint custom token: %w", ErrUnavailable, err)
		return o
	}
	o.status, o.result, o.token = http.StatusOK, ResultOK, tok
	return o
}

// decodePassword reads the body strictly: one JSON object of exactly
// email and password, valid UTF-8, within BodyLimit, nothing after it.
func (s *Service) decodePassword(w http.ResponseWriter, r *http.Request) (passwordRequest, outcome, bool) {
	bad := func(err error) (passwordRequest, outcome, bool) {
		return passwordRequest{}, outcome{status: http.StatusBadRequest, result: ResultInvalidBody, err: err}, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.Password.BodyLimit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return passwordRequest{}, outcome{status: http.StatusRequestEntityTooLarge, result: ResultBodyTooLarge}, false
	}
	if err != nil {
		return bad(errors.New("read body"))
	}
	if !utf8.Valid(b) {
		return bad(errors.New("body is not UTF-8"))
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var req passwordRequest
	// Errors of the decoder can quote the input: they are not kept.
	if err := dec.Decode(&req); err != nil {
		return bad(errors.New("body is not a JSON object of email and password"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad(errors.New("data after the JSON object"))
	}
	if dupKeys(b) {
		return bad(errors.New("duplicate keys"))
	}
	req.Email = strings.TrimSpace(req.Email)
	at := strings.LastIndexByte(req.Email, '@')
	switch {
	case req.Email == "" || len(req.Email) > 254 || at <= 0 || at == len(req.Email)-1:
		return bad(errors.New("email missing or malformed"))
	case req.Password == "" || len(req.Password) > 1024:
		return bad(errors.New("password missing or longer than 1024 bytes"))
	}
	return req, outcome{}, true
}

// dupKeys reports whether the top-level object names a key twice (the
// decoder would silently keep the last).
func dupKeys(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	n := 0
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			break
		}
		switch d := t.(type) {
		case json.Delim:
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
			continue
		}
		if depth == 1 {
			n++ // keys and values alternate at the top level
		}
	}
	return n/2 != len(m)
}

func loginOutcome(err error, retry time.Duration) outcome {
	o := outcome{err: err}
	var ae *auth0Error
	switch {
	case errors.Is(err, errWrongCredentials):
		o.status, o.result = http.StatusUnauthorized, ResultInvalidCredentials
	case errors.Is(err, errLoginBlocked):
		o.status, o.result = http.StatusTooManyRequests, ResultLoginBlocked
	case errors.Is(err, errMFARequired):
		o.status, o.result = http.StatusForbidden, ResultMFARequired
	case errors.Is(err, errLoginDenied):
		o.status, o.result = http.StatusForbidden, ResultLoginDenied
	case errors.Is(err, ErrUnavailable):
		o.status, o.result, o.retryAfter = http.StatusServiceUnavailable, ResultUnavailable, retry
		if errors.As(err, &ae) && ae.retryAfter > retry {
			o.retryAfter = ae.retryAfter
		}
	default:
		o.status, o.result = http.StatusInternalServerError, ResultInternal
	}
	return o
}

func (s *Service) respondPassword(w http.ResponseWriter, o outcome) {
	h := w.Header()
	switch o.status {
	case http.StatusOK:
		writeJSON(w, http.StatusOK, Response{FirebaseToken: o.token, UID: o.uid})
		return
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	}
	if o.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(o.retryAfter.Seconds()))))
	}
	msg, ok := passwordMessages[o.result]
	if !ok {
		msg = messages[o.result]
	}
	writeJSON(w, o.status, Problem{Error: o.result, Message: msg})
}

// Refusals of the account step.
var (
	// errAccountExists: the person's uid has an account that neither the
	// ledger nor its auth0_user_id claim says signupsync made for them.
	errAccountExists = errors.New("an account signupsync did not make holds the uid")
	// errEmailInUse: another person's account holds the email.
	errEmailInUse = errors.New("another account holds the email")
	// errPasswordRejected: Firebase refuses the password (shorter than 6).
	errPasswordRejected = errors.New("firebase refuses the password")
)

// passwordAccount finds or makes the Firebase account of a person Auth0
// just authenticated, with their password:
//
//   - the ledger names their account (a final outcome): it is checked like
//     the exchange's ([Service.check]); if signupsync made it (imported, not
//     linked) and it has no password, the password is set on it; a password
//     already there is never replaced;
//   - otherwise CreateUser makes it under the policy uid with the email,
//     email_verified from Auth0's token and the password, marks it with the
//     auth0_user_id claim and records imported/lazy_password in the ledger.
//     CreateUser refuses an existing uid or email, in production as in the
//     emulator, so concurrent requests (in any replica) make one account:
//     the others find the uid taken and use the account once its claim or
//     the ledger says it is this person's ([Service.settleExisting]).
func (s *Service) passwordAccount(ctx context.Context, l auth0Login, password string) (account, error) {
	entry, rev, found, err := s.readLedgerRev(ctx, l.sub)
	if err != nil {
		return account{}, err
	}
	if found && entry.Outcome.Final() && entry.FirebaseUID != "" {
		return s.useLedgerAccount(ctx, l, entry, password)
	}
	uid := s.cfg.UIDPolicy.FirebaseUID(l.sub)
	if len(password) < 6 {
		return account{}, errPasswordRejected
	}
	u := (&auth.UserToCreate{}).UID(uid).Email(l.email).EmailVerified(l.emailVerified).Password(password)
	_, err = s.createUser(ctx, u)
	switch {
	case err == nil:
		if err := s.markOwner(ctx, uid, l.sub); err != nil {
			return account{}, err
		}
		s.recordLazy(ctx, l.sub, uid, entry, rev, found)
		return account{uid, ViaCreated}, nil
	case auth.IsUIDAlreadyExists(err):
		return s.settleExisting(ctx, l, uid, password)
	case auth.IsEmailAlreadyExists(err):
		rec, lerr := s.lookup(ctx, auth.EmailIdentifier{Email: l.email})
		if lerr != nil {
			return account{}, lerr
		}
		if rec != nil && rec.UID == uid {
			return s.settleExisting(ctx, l, uid, password)
		}
		return account{}, errEmailInUse
	}
	return account{}, classifyScrubbed("CreateUser", err)
}

// useLedgerAccount answers the account the ledger names, setting the
// password when signupsync made the account and it has none.
func (s *Service) useLedgerAccount(ctx context.Context, l auth0Login, e events.LedgerEntry, password string) (account, error) {
	if _, err := s.check(ctx, l.sub, account{e.FirebaseUID, ViaLedger}); err != nil {
		return account{}, err
	}
	rec, err := s.lookup(ctx, auth.UIDIdentifier{UID: e.FirebaseUID})
	if err != nil {
		return account{}, err
	}
	if rec == nil {
		return account{}, &checkError{CheckAccountNotFound, e.FirebaseUID, ViaLedger}
	}
	made := e.Outcome == events.OutcomeImported && e.Reason != events.ReasonLinked
	if hasPassword(rec) || !made {
		return account{rec.UID, ViaExisting}, nil
	}
	if err := s.setPassword(ctx, rec.UID, password); err != nil {
		return account{}, err
	}
	return account{rec.UID, ViaPasswordSet}, nil
}

// settleExisting handles a uid CreateUser found taken: the account is this
// person's when its auth0_user_id claim names them or the ledger names it
// (a concurrent request, or the importer, made it). A concurrent request
// sets the claim right after CreateUser, so the check is repeated for up to
// SettleWait before the account counts as someone else's.
func (s *Service) settleExisting(ctx context.Context, l auth0Login, uid, password string) (account, error) {
	deadline := time.NewTimer(s.cfg.Password.SettleWait)
	defer deadline.Stop()
	for {
		rec, err := s.lookup(ctx, auth.UIDIdentifier{UID: uid})
		if err != nil {
			return account{}, err
		}
		if rec != nil && rec.CustomClaims[ClaimAuth0UserID] == l.sub {
			if hasPassword(rec) {
				return account{uid, ViaExisting}, nil
			}
			if err := s.setPassword(ctx, uid, password); err != nil {
				return account{}, err
			}
			return account{uid, ViaPasswordSet}, nil
		}
		entry, _, found, err := s.readLedgerRev(ctx, l.sub)
		if err != nil {
			return account{}, err
		}
		if found && entry.Outcome.Final() && entry.FirebaseUID == uid {
			return s.useLedgerAccount(ctx, l, entry, password)
		}
		select {
		case <-deadline.C:
			return account{}, errAccountExists
		case <-ctx.Done():
			return account{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func hasPassword(rec *auth.UserRecord) bool {
	for _, p := range rec.ProviderUserInfo {
		if p != nil && p.ProviderID == "password" {
			return true
		}
	}
	return false
}

func (s *Service) createUser(ctx context.Context, u *auth.UserToCreate) (*auth.UserRecord, error) {
	ctx, span := s.tracer.Start(ctx, "firebase CreateUser", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", "CreateUser")))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	rec, err := s.pw.accounts.CreateUser(ctx, u)
	if err != nil && !auth.IsUIDAlreadyExists(err) && !auth.IsEmailAlreadyExists(err) {
		recordError(span, scrub(err))
	}
	return rec, err
}

// setPassword sets the password of an account that has none.
func (s *Service) setPassword(ctx context.Context, uid, password string) error {
	if len(password) < 6 {
		return errPasswordRejected
	}
	return s.updateUser(ctx, "set password", uid, (&auth.UserToUpdate{}).Password(password))
}

// markOwner sets the auth0_user_id claim on an account just created.
func (s *Service) markOwner(ctx context.Context, uid, sub string) error {
	return s.updateUser(ctx, "set owner claim", uid, (&auth.UserToUpdate{}).CustomClaims(map[string]any{ClaimAuth0UserID: sub}))
}

func (s *Service) updateUser(ctx context.Context, what, uid string, u *auth.UserToUpdate) error {
	ctx, span := s.tracer.Start(ctx, "firebase UpdateUser", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "firebase-auth"), attribute.String("rpc.method", "UpdateUser")))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	if _, err := s.pw.accounts.UpdateUser(ctx, uid, u); err != nil {
		err = classifyScrubbed("UpdateUser ("+what+")", err)
		recordError(span, err)
		return err
	}
	return nil
}

// classifyScrubbed is classifyFirebase with the error's text scrubbed (the
// classification reads the unwrapped error, so it comes first).
func classifyScrubbed(op string, err error) error {
	if errors.Is(classifyFirebase(op, err), ErrUnavailable) {
		return fmt.Errorf("%w: firebase %s: %w", ErrUnavailable, op, scrub(err))
	}
	return fmt.Errorf("%w: firebase %s: %w", ErrDependency, op, scrub(err))
}

// scrub keeps a Firebase error's classification and drops its text, which
// may quote the request (the email).
func scrub(err error) error { return &scrubbed{err} }

type scrubbed struct{ err error }

func (e *scrubbed) Error() string {
	if auth.IsUserNotFound(e.err) {
		return "user not found"
	}
	return "firebase refused the request"
}
func (e *scrubbed) Unwrap() error { return e.err }

// recordLazy records imported/lazy_password for the person, with
// compare-and-set like the importer's ledger so no concurrent writer's
// update is lost, and without downgrading a decided outcome. The account
// exists by now, and its claim already says whose it is, so a failure here
// is logged, not answered.
func (s *Service) recordLazy(ctx context.Context, sub, uid string, cur events.LedgerEntry, rev uint64, found bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	key := events.LedgerKey(sub)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			if cur, rev, found, err = s.readLedgerRev(ctx, sub); err != nil {
				s.log.ErrorContext(ctx, "ledger not updated", "auth0_sub", sub, "firebase_uid", uid, "err", err)
				return
			}
		}
		now := s.now().UTC()
		next := cur
		if !found {
			next = events.LedgerEntry{Auth0UserID: sub, FirstSeen: now}
		} else if !cur.SupersededBy(events.OutcomeImported, events.ReasonLazyPassword) {
			return
		}
		if next.Sources == nil {
			next.Sources = []events.Source{}
		}
		next.Outcome, next.Reason, next.Detail, next.FirebaseUID, next.LastSeen = events.OutcomeImported, events.ReasonLazyPassword, "", uid, now
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			next.TraceID = sc.TraceID().String()
		}
		b, err := events.MarshalLedger(next)
		if err != nil {
			s.log.ErrorContext(ctx, "ledger not updated", "auth0_sub", sub, "err", err)
			return
		}
		if found {
			_, err = s.ledger.Update(ctx, key, b, rev)
		} else {
			_, err = s.ledger.Create(ctx, key, b)
		}
		if err == nil {
			return
		}
		conflict := errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)
		if !conflict || attempt >= 8 {
			s.log.ErrorContext(ctx, "ledger not updated", "auth0_sub", sub, "firebase_uid", uid, "err", err)
			return
		}
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// readLedgerRev is readLedger with the revision to update the entry by.
func (s *Service) readLedgerRev(ctx context.Context, sub string) (events.LedgerEntry, uint64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	kve, err := s.ledger.Get(ctx, events.LedgerKey(sub))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.LedgerEntry{}, 0, false, nil
	}
	if err != nil {
		return events.LedgerEntry{}, 0, false, fmt.Errorf("%w: ledger get: %w", ErrUnavailable, err)
	}
	e, err := events.UnmarshalLedger(kve.Value())
	if err != nil {
		// A corrupt entry is overwritten, by revision.
		return events.LedgerEntry{Auth0UserID: sub}, kve.Revision(), true, nil
	}
	return e, kve.Revision(), true, nil
}
