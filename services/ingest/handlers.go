package ingest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/schemas"
)

// Receiver names, used in metrics and logs.
const (
	receiverAction      = "auth0_action"
	receiverEventStream = "auth0_event_stream"
	receiverLogStream   = "auth0_log_stream"
)

// Handler returns the public HTTP handler: every webhook receiver, each
// wrapped in an OpenTelemetry server span that continues an incoming
// traceparent, and a bare GET /healthz for load balancers that probe the
// serving port. /metrics and /readyz are on [Service.AdminHandler] only.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(path, receiver string, h http.HandlerFunc) {
		mux.Handle(path, otelhttp.NewHandler(s.counted(receiver, h), "POST "+path,
			otelhttp.WithTracerProvider(s.tracerProv), otelhttp.WithPropagators(s.prop)))
	}
	route(PathAction, receiverAction, s.handleAction)
	route(PathEventStream, receiverEventStream, s.handleEventStream)
	route(PathLogStream, receiverLogStream, s.handleLogStream)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	return mux
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *Service) counted(receiver string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.request(receiver, sw.status, time.Since(start))
	})
}

// problem is the JSON error body of every rejected request.
type problem struct {
	Error   string `json:"error"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers a rejected request. It never echoes input beyond the field
// path and a fixed reason.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, receiver string, status int, err error) {
	p := problem{Message: err.Error()}
	switch status {
	case http.StatusUnauthorized:
		p.Error = "unauthorized"
		p.Message = "missing or invalid credentials"
	case http.StatusBadRequest:
		p.Error = "invalid_body"
		var bre *BadRequestError
		var fe *schemas.FieldError
		switch {
		case errors.As(err, &bre):
			p.Field, p.Message = bre.Field, bre.Reason
		case errors.As(err, &fe):
			p.Field, p.Message = fe.Field, fe.Reason
		}
	case http.StatusRequestEntityTooLarge:
		p.Error = "body_too_large"
		var tle *tooLargeError
		if !errors.As(err, &tle) {
			p.Message = "body too large"
		}
	case http.StatusUnsupportedMediaType:
		p.Error = "unsupported_media_type"
	case http.StatusMethodNotAllowed:
		p.Error = "method_not_allowed"
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		p.Error = "broker_unavailable"
		p.Message = "the signup was not stored; retry later"
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter/time.Second)))
	case http.StatusInternalServerError:
		p.Error = "internal_error"
		p.Message = "the request could not be processed"
	}
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(attribute.String("signupsync.rejection", p.Error))
	if status >= 500 {
		recordSpanError(span, err)
		s.log.ErrorContext(r.Context(), "request failed", "receiver", receiver, "status", status, "err", err)
	} else {
		s.log.InfoContext(r.Context(), "request rejected", "receiver", receiver, "status", status, "error", p.Error, "field", p.Field)
	}
	writeJSON(w, status, p)
}

var (
	errMethod    = errors.New("only POST is allowed")
	errMediaType = errors.New("content type must be JSON")
	errEmpty     = &BadRequestError{Reason: "empty body"}
	errRead      = &BadRequestError{Reason: "could not read body"}
)

// openBody enforces method, media type and a declared length within limit,
// and returns the body bounded by limit. It writes the response itself when
// it returns ok=false.
func (s *Service) openBody(w http.ResponseWriter, r *http.Request, receiver string, media map[string]bool, limit int64) (io.Reader, bool) {
	if r.Method != http.MethodPost {
		s.fail(w, r, receiver, http.StatusMethodNotAllowed, errMethod)
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !media[mt] {
		s.fail(w, r, receiver, http.StatusUnsupportedMediaType, errMediaType)
		return nil, false
	}
	if r.ContentLength > limit {
		s.fail(w, r, receiver, http.StatusRequestEntityTooLarge, bodyTooLarge(limit))
		return nil, false
	}
	return http.MaxBytesReader(w, r.Body, limit), true
}

func bodyTooLarge(limit int64) error {
	return &tooLargeError{What: "body", Limit: limit, Unit: "bytes"}
}

// readStatus is the answer to an error reading a bounded body: 413 past the
// limit, 400 for anything else the sender did.
func readStatus(err error, limit int64) (int, error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, bodyTooLarge(limit)
	}
	return http.StatusBadRequest, errRead
}

// readBody is openBody for the receivers that take one JSON document
// within BodyLimit: it returns the whole body.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request, receiver string, media map[string]bool) ([]byte, bool) {
	rd, ok := s.openBody(w, r, receiver, media, s.cfg.BodyLimit)
	if !ok {
		return nil, false
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		status, err := readStatus(err, s.cfg.BodyLimit)
		s.fail(w, r, receiver, status, err)
		return nil, false
	}
	if len(body) == 0 {
		s.fail(w, r, receiver, http.StatusBadRequest, errEmpty)
		return nil, false
	}
	return body, true
}

var (
	jsonMedia       = map[string]bool{"application/json": true}
	cloudEventMedia = map[string]bool{"application/json": true, "application/cloudevents+json": true, "application/cloudevents-batch+json": true}
	logMedia        = map[string]bool{"application/json": true, "application/x-ndjson": true, "application/jsonl": true, "application/json-lines": true, "text/plain": true}
)

// accepted is the 202 body of a receiver that stored one signup.
type accepted struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// batchAccepted is the 202 body of a receiver that may store several.
type batchAccepted struct {
	Signups []accepted `json:"signups"`
	Ignored int        `json:"ignored"`
	// DeadLettered counts the Log Streams signup entries kept in
	// SIGNUPS_DLQ because they were invalid.
	DeadLettered int `json:"dead_lettered,omitempty"`
	// Lifecycle lists the deletions and profile changes stored
	// (events.LifecycleSubject).
	Lifecycle []accepted `json:"lifecycle,omitempty"`
}

func (s *Service) handleAction(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r, receiverAction, jsonMedia)
	if !ok {
		return
	}
	if s.action == nil {
		s.fail(w, r, receiverAction, http.StatusUnauthorized, ErrUnauthorized)
		return
	}
	if err := s.action.Verify(r.Header, body); err != nil {
		s.fail(w, r, receiverAction, http.StatusUnauthorized, err)
		return
	}
	doc, err := s.decode(body, schemas.Auth0Action)
	if err != nil {
		s.fail(w, r, receiverAction, http.StatusBadRequest, err)
		return
	}
	d := actionData(doc.(map[string]any), s.cfg.Tenant)
	if err := identityError(d, "/user"); err != nil {
		s.fail(w, r, receiverAction, http.StatusBadRequest, err)
		return
	}
	s.storeOne(w, r, receiverAction, events.SourceAction, d)
}

// identityError is a 400 naming the user_id field under at when the
// signup's user_id is not its primary identity's (events.CheckPrimaryIdentity),
// checked before anything of the request is published.
func identityError(d events.SignupData, at string) error {
	var ie *events.IdentityError
	if err := events.CheckPrimaryIdentity(d); errors.As(err, &ie) {
		return &BadRequestError{Field: at + "/" + ie.Field, Reason: ie.Reason}
	} else if err != nil {
		return err
	}
	return nil
}

func (s *Service) handleEventStream(w http.ResponseWriter, r *http.Request) {
	if err := s.eventAuth.check(r); err != nil {
		if r.Method != http.MethodPost {
			s.fail(w, r, receiverEventStream, http.StatusMethodNotAllowed, errMethod)
			return
		}
		s.fail(w, r, receiverEventStream, http.StatusUnauthorized, err)
		return
	}
	body, ok := s.readBody(w, r, receiverEventStream, cloudEventMedia)
	if !ok {
		return
	}
	doc, err := parseJSON(body)
	if err != nil {
		s.fail(w, r, receiverEventStream, http.StatusBadRequest, err)
		return
	}
	var list []any
	switch v := doc.(type) {
	case []any:
		list = v
	default:
		list = []any{v}
	}
	var signups []events.SignupData
	var lifecycle []events.LifecycleData
	ignored := 0
	for i, item := range list {
		if err := s.schemas.Validate(schemas.Auth0EventStream, item); err != nil {
			s.fail(w, r, receiverEventStream, http.StatusBadRequest, prefixField(err, list, i))
			return
		}
		ev := item.(map[string]any)
		if str(ev, "a0purpose") == "test" {
			// A test delivery (the dashboard's or the Management API's "send
			// a test event"): acknowledged, counted and logged, never a signup.
			ignored++
			s.metrics.ignoredEvent(receiverEventStream, typeTestDelivery)
			s.log.InfoContext(r.Context(), "event stream test delivery acknowledged", "event_type", eventTypeLabel(str(ev, "type")))
			continue
		}
		if d, ok := events.EventStreamLifecycle(ev, s.cfg.Tenant); ok {
			if d.At.IsZero() {
				at := "/time"
				if len(list) > 1 {
					at = "/" + strconv.Itoa(i) + at
				}
				s.fail(w, r, receiverEventStream, http.StatusBadRequest, badRequest(at, "a %s event needs a time (time, data.object.updated_at or deleted_at)", str(ev, "type")))
				return
			}
			lifecycle = append(lifecycle, d)
			continue
		}
		if str(ev, "type") != "user.created" {
			ignored++
			s.metrics.ignoredEvent(receiverEventStream, str(ev, "type"))
			continue
		}
		d := eventStreamData(ev, s.cfg.Tenant)
		at := "/data/object"
		if len(list) > 1 {
			at = "/" + strconv.Itoa(i) + at
		}
		if err := identityError(d, at); err != nil {
			s.fail(w, r, receiverEventStream, http.StatusBadRequest, err)
			return
		}
		signups = append(signups, d)
	}
	if _, isArray := doc.([]any); !isArray && len(signups) == 1 {
		s.storeOne(w, r, receiverEventStream, events.SourceEventStream, signups[0])
		return
	}
	s.storeMany(w, r, receiverEventStream, events.SourceEventStream, signups, lifecycle, ignored)
}

func (s *Service) handleLogStream(w http.ResponseWriter, r *http.Request) {
	if err := s.logAuth.check(r); err != nil {
		if r.Method != http.MethodPost {
			s.fail(w, r, receiverLogStream, http.StatusMethodNotAllowed, errMethod)
			return
		}
		s.fail(w, r, receiverLogStream, http.StatusUnauthorized, err)
		return
	}
	body, ok := s.openBody(w, r, receiverLogStream, logMedia, s.cfg.LogStreamBodyLimit)
	if !ok {
		return
	}
	batch, err := s.decodeLogBatch(body)
	if err != nil {
		var bre *BadRequestError
		var tle *tooLargeError
		switch {
		case errors.As(err, &bre):
			s.fail(w, r, receiverLogStream, http.StatusBadRequest, err)
		case errors.As(err, &tle):
			s.fail(w, r, receiverLogStream, http.StatusRequestEntityTooLarge, err)
		case errors.Is(err, errInternal):
			s.fail(w, r, receiverLogStream, http.StatusInternalServerError, err)
		default:
			status, rerr := readStatus(err, s.cfg.LogStreamBodyLimit)
			s.fail(w, r, receiverLogStream, status, rerr)
		}
		return
	}
	s.storeLogBatch(w, r, batch)
}

// prefixField adds the item index to a schema error's field when the body
// held several items.
func prefixField(err error, list []any, i int) error {
	var fe *schemas.FieldError
	if len(list) > 1 && errors.As(err, &fe) {
		return &BadRequestError{Field: "/" + strconv.Itoa(i) + fe.Field, Reason: fe.Reason}
	}
	return err
}

func (s *Service) decode(body []byte, schema string) (any, error) {
	doc, err := parseJSON(body)
	if err != nil {
		return nil, err
	}
	if err := s.schemas.Validate(schema, doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func (s *Service) storeOne(w http.ResponseWriter, r *http.Request, receiver string, src events.Source, d events.SignupData) {
	id, dup, err := s.publish(r.Context(), src, d)
	if err != nil {
		s.fail(w, r, receiver, publishStatus(err), err)
		return
	}
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("signupsync.event_id", id), attribute.Bool("signupsync.duplicate", dup))
	s.log.InfoContext(r.Context(), "signup accepted", "receiver", receiver, "event_id", id, "duplicate", dup)
	writeJSON(w, http.StatusAccepted, accepted{ID: id, Duplicate: dup})
}

// storeMany publishes every signup of a batch and answers 202 only when all
// are durable; on any failure it answers 503 so the sender retries the whole
// batch, whose stored part the duplicate window then absorbs.
func (s *Service) storeMany(w http.ResponseWriter, r *http.Request, receiver string, src events.Source, list []events.SignupData, lifecycle []events.LifecycleData, ignored int) {
	out := batchAccepted{Signups: make([]accepted, 0, len(list)), Ignored: ignored}
	for _, d := range list {
		id, dup, err := s.publish(r.Context(), src, d)
		if err != nil {
			s.fail(w, r, receiver, publishStatus(err), err)
			return
		}
		out.Signups = append(out.Signups, accepted{ID: id, Duplicate: dup})
	}
	lc, err := s.storeLifecycle(r.Context(), src, lifecycle)
	if err != nil {
		s.fail(w, r, receiver, publishStatus(err), err)
		return
	}
	out.Lifecycle = lc
	s.log.InfoContext(r.Context(), "batch accepted", "receiver", receiver, "signups", len(out.Signups), "lifecycle", len(lc), "ignored", ignored)
	writeJSON(w, http.StatusAccepted, out)
}

// publishStatus is the answer to a failed publish: 400 for a signup that
// events.NewMsg refuses (a client error, retrying cannot fix it), else 503.
func publishStatus(err error) int {
	if errors.Is(err, events.ErrInvalidUser) || errors.Is(err, events.ErrMalformedLifecycle) {
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

func messagingAttrs(subject, id string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "publish"),
		attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.message.id", id),
	}
}

func recordSpanError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
