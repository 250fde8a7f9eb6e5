package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/httpserve"
)

// Claims the minted custom token carries. They become claims of the
// Firebase ID token of the session the custom token starts (not of the
// account), so the app's backend can tell a bridged session.
const (
	ClaimExchange = "signupsync_exchange"
	ClaimAuth0Sub = "auth0_sub"
)

// Results, the "error" codes of non-200 bodies besides the token reasons,
// and the result label of the metrics.
const (
	ResultOK               = "ok"
	ResultRateLimited      = "rate_limited"
	ResultNotMigrated      = "not_migrated"
	ResultImportPending    = "import_pending"
	ResultUnavailable      = "unavailable"
	ResultMethodNotAllowed = "method_not_allowed"
	ResultCancelled        = "cancelled"
	// ResultAccountNotFound: the ledger names a Firebase account that no
	// longer exists (404).
	ResultAccountNotFound = CheckAccountNotFound
	// ResultIdentityMismatch: the ledger names a Firebase account that is
	// not the caller's (409).
	ResultIdentityMismatch = CheckIdentityMismatch
	// ResultInternal: Firebase refused a look-up for a reason a retry does
	// not change (500).
	ResultInternal = "internal_error"
)

// Response is the 200 body.
type Response struct {
	FirebaseToken string `json:"firebase_token"`
	UID           string `json:"uid"`
}

// Problem is the body of every other answer. Message is fixed per Error
// code and never says which check failed.
type Problem struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

var messages = map[string]string{
	ReasonMissingToken:     "send the Auth0 access token as a bearer token",
	ReasonInvalidToken:     "the token is not valid",
	ReasonExpired:          "the token has expired: refresh it and try again",
	ReasonNotYetValid:      "the token is not valid yet",
	ReasonTooOld:           "the sign-in is too old: refresh the token and try again",
	ResultRateLimited:      "too many requests: retry after the Retry-After delay",
	ResultNotMigrated:      "this account cannot be moved to Firebase yet: keep using the Auth0 sign-in",
	ResultImportPending:    "the account is being moved: retry after the Retry-After delay",
	ResultUnavailable:      "temporarily unavailable: retry after the Retry-After delay",
	ResultMethodNotAllowed: "only POST is allowed",
	ResultCancelled:        "request cancelled",
	ResultAccountNotFound:  "this account cannot be moved to Firebase: keep using the Auth0 sign-in",
	ResultIdentityMismatch: "this account cannot be moved to Firebase: keep using the Auth0 sign-in",
	ResultInternal:         "the exchange failed: keep using the Auth0 sign-in",
	// The anonymous merge (merge.go).
	ReasonAnonymousInvalid:       "the anonymous session token is not valid: call again without it, or with a fresh one",
	ReasonAnonymousExpired:       "the anonymous session token has expired: refresh it and try again",
	ReasonAnonymousRevoked:       "the anonymous session was signed out: call again without its token",
	ReasonAnonymousWrongProject:  "the anonymous session token is of another Firebase project",
	ReasonNotAnonymous:           "the session token is not of an anonymous account",
	ResultAnonymousAlreadyMerged: "this guest session was already merged into another account: sign in without it",
}

// Handler returns the HTTP handler: the exchange endpoint in an
// OpenTelemetry server span that continues an incoming traceparent, plus a
// bare GET /healthz for load balancers that probe the serving port.
// /metrics and /readyz are on the admin listener only (httpserve.Admin).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathExchange, otelhttp.NewHandler(http.HandlerFunc(s.handleExchange), "POST "+PathExchange,
		otelhttp.WithTracerProvider(s.tracerProv), otelhttp.WithPropagators(s.prop)))
	mux.Handle(PathPassword, otelhttp.NewHandler(http.HandlerFunc(s.handlePassword), "POST "+PathPassword,
		otelhttp.WithTracerProvider(s.tracerProv), otelhttp.WithPropagators(s.prop)))
	mux.HandleFunc("GET /healthz", handleHealthz)
	return mux
}

// outcome is everything one exchange decided, for the answer, the metrics,
// the span and the audit line.
type outcome struct {
	status     int
	result     string
	sub        string
	uid        string
	via        string
	token      string
	retryAfter time.Duration
	err        error
	// claimedUID is the uid a failed account check refused, for the audit
	// line only.
	claimedUID string
	// merge is the anonymous merge's part (merge.go); nil without
	// HeaderAnonymousToken.
	merge *mergeOutcome
}

func (s *Service) handleExchange(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, span := s.tracer.Start(r.Context(), "session exchange")
	defer span.End()
	o := s.exchange(ctx, r)
	s.respond(w, o)

	s.metrics.exchange(o.result, time.Since(start))
	span.SetAttributes(attribute.String("signupsync.exchange.result", o.result), attribute.Int("http.response.status_code", o.status))
	attrs := []slog.Attr{slog.String("result", o.result), slog.Int("status", o.status)}
	if o.sub != "" {
		// The span gets the event id (a hash), the audit log the ids.
		span.SetAttributes(attribute.String("signupsync.event_id", events.EventID(o.sub)))
		attrs = append(attrs, slog.String("auth0_sub", o.sub))
	}
	if o.uid != "" {
		span.SetAttributes(attribute.String("signupsync.exchange.via", o.via))
		attrs = append(attrs, slog.String("firebase_uid", o.uid), slog.String("via", o.via))
	}
	if o.claimedUID != "" {
		attrs = append(attrs, slog.String("refused_uid", o.claimedUID), slog.String("via", o.via))
	}
	if o.err != nil {
		attrs = append(attrs, slog.String("detail", o.err.Error()))
	}
	attrs = append(attrs, slog.Int64("duration_ms", time.Since(start).Milliseconds()))
	level := slog.LevelInfo
	if o.result == ResultIdentityMismatch {
		level = slog.LevelWarn // a ledger entry naming someone else's account
	}
	if o.status >= 500 {
		level = slog.LevelError
		span.RecordError(o.err)
		span.SetStatus(codes.Error, o.result)
	}
	s.log.LogAttrs(ctx, level, "session exchange", attrs...)
	s.auditMerge(ctx, span, o)
}

// exchange verifies, rate-limits, resolves and mints.
func (s *Service) exchange(ctx context.Context, r *http.Request) outcome {
	if r.Method != http.MethodPost {
		return outcome{status: http.StatusMethodNotAllowed, result: ResultMethodNotAllowed}
	}
	if ok, wait := s.byIP.allow(clientKey(r, s.cfg.ClientIPHeader), s.now()); !ok {
		return outcome{status: http.StatusTooManyRequests, result: ResultRateLimited, retryAfter: wait, err: errors.New("per-address limit")}
	}
	claims, err := s.verifier.Verify(ctx, bearer(r))
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) {
			return outcome{status: http.StatusUnauthorized, result: te.Reason, err: err}
		}
		return outcome{status: http.StatusServiceUnavailable, result: ResultUnavailable, retryAfter: s.cfg.RetryAfter, err: err}
	}
	o := outcome{sub: claims.Subject}
	if ok, wait := s.bySubject.allow(claims.Subject, s.now()); !ok {
		o.status, o.result, o.retryAfter, o.err = http.StatusTooManyRequests, ResultRateLimited, wait, errors.New("per-subject limit")
		return o
	}
	// The guest's token is proven before anything is looked up or minted.
	g, err := s.verifyGuest(ctx, r)
	if g != nil {
		o.merge = &mergeOutcome{anonymousUID: g.uid}
	}
	if err != nil {
		o.err = err
		var ge *guestError
		switch {
		case errors.As(err, &ge):
			o.status, o.result = http.StatusBadRequest, ge.reason
		case ctx.Err() != nil:
			o.status, o.result = 499, ResultCancelled
		case errors.Is(err, ErrDependency):
			o.status, o.result = http.StatusInternalServerError, ResultInternal
		default:
			o.status, o.result, o.retryAfter = http.StatusServiceUnavailable, ResultUnavailable, s.cfg.RetryAfter
		}
		o.merge = &mergeOutcome{result: o.result}
		return o
	}
	acct, err := s.resolveShared(ctx, claims.Subject)
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
		case errors.Is(err, ErrNotMigrated):
			o.status, o.result = http.StatusNotFound, ResultNotMigrated
		case errors.Is(err, ErrImportPending):
			o.status, o.result, o.retryAfter = http.StatusServiceUnavailable, ResultImportPending, s.cfg.RetryAfter
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
	if g != nil {
		if err := s.checkMerge(ctx, g, acct.uid); err != nil {
			return s.mergeFailed(ctx, o, err)
		}
	}
	mctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	tok, err := s.fb.CustomTokenWithClaims(mctx, acct.uid, map[string]any{ClaimExchange: true, ClaimAuth0Sub: claims.Subject})
	if err != nil {
		o.status, o.result, o.retryAfter, o.err = http.StatusServiceUnavailable, ResultUnavailable, s.cfg.RetryAfter, fmt.Errorf("%w: mint custom token: %w", ErrUnavailable, err)
		if o.merge != nil {
			o.merge.result = ResultUnavailable
		}
		return o
	}
	if g != nil {
		// The token is answered only with the merge request durable, so
		// the app never signs in leaving the guest's data behind; a retry
		// is the same request.
		result, id, err := s.requestMerge(ctx, g, acct.uid, claims.Subject)
		o.merge.id = id
		if err != nil {
			return s.mergeFailed(ctx, o, err)
		}
		o.merge.result = result
		s.recordMerge(ctx, claims.Subject, g.uid, id)
	}
	s.metrics.resolvedVia(acct.via)
	o.status, o.result, o.token = http.StatusOK, ResultOK, tok
	return o
}

// mergeFailed answers an exchange whose merge was refused (409) or could
// not be requested; no token is answered.
func (s *Service) mergeFailed(ctx context.Context, o outcome, err error) outcome {
	o.err = err
	switch {
	case errors.Is(err, errAlreadyMerged):
		o.status, o.result = http.StatusConflict, ResultAnonymousAlreadyMerged
	case ctx.Err() != nil:
		o.status, o.result = 499, ResultCancelled
	case errors.Is(err, ErrDependency):
		o.status, o.result = http.StatusInternalServerError, ResultInternal
	default:
		o.status, o.result, o.retryAfter = http.StatusServiceUnavailable, ResultUnavailable, s.cfg.RetryAfter
	}
	o.merge.result = o.result
	return o
}

func (s *Service) respond(w http.ResponseWriter, o outcome) {
	h := w.Header()
	switch o.status {
	case http.StatusOK:
		writeJSON(w, http.StatusOK, Response{FirebaseToken: o.token, UID: o.uid})
		return
	case http.StatusUnauthorized:
		if o.result == ReasonMissingToken {
			h.Set("WWW-Authenticate", `Bearer realm="signupsync"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="signupsync", error="invalid_token"`)
		}
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	}
	if o.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(o.retryAfter.Seconds()))))
	}
	writeJSON(w, o.status, Problem{Error: o.result, Message: messages[o.result]})
}

// bearer returns the token of an "Authorization: Bearer <token>" header, or
// "" when there is none.
func bearer(r *http.Request) string {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return ""
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve runs the exchange HTTP server on ln until ctx is cancelled, then
// shuts it down gracefully within ShutdownTimeout. It fetches the JWKS
// first; a failure is logged and retried by the first request.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.verifier.Warm(ctx); err != nil {
		s.log.WarnContext(ctx, "jwks not loaded yet", "url", s.cfg.VerifierConfig().jwksURL(), "err", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
	}
	var stopMerged func(context.Context)
	if s.cfg.Merge.DeleteAnonymous {
		stop, err := s.ConsumeMerged(ctx)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("exchange: %w", err)
		}
		stopMerged = stop
	}
	s.log.InfoContext(ctx, "exchange listening", "addr", ln.Addr().String(), "issuer", s.cfg.Issuer)
	err := httpserve.Serve(ctx, srv, ln, s.cfg.ShutdownTimeout)
	if stopMerged != nil {
		// After the HTTP server: drain the acknowledgements in flight.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		stopMerged(sctx)
		cancel()
	}
	if err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	s.log.InfoContext(ctx, "exchange stopped")
	return nil
}

// Listen opens the TCP listener of addr.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	return httpserve.Listen(ctx, addr)
}

// handleHealthz is the public port's bare liveness answer.
func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
