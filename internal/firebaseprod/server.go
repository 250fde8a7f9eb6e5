package firebaseprod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/httpserve"
)

// Endpoints, as the keys of [Stats.Calls]: the last segment of the
// Identity Toolkit path.
const (
	EndpointSignUp      = "accounts"
	EndpointLookup      = "accounts:lookup"
	EndpointBatchCreate = "accounts:batchCreate"
	EndpointUpdate      = "accounts:update"
	EndpointDelete      = "accounts:delete"
	EndpointBatchDelete = "accounts:batchDelete"
	EndpointBatchGet    = "accounts:batchGet"
)

// Limits.
const (
	// DefaultMaxBodyBytes caps a request body; a larger one answers 413.
	DefaultMaxBodyBytes = 32 << 20
	// MaxImportUsers is the documented limit of one importUsers call.
	MaxImportUsers = 1000
	// MaxDeleteUIDs is the documented limit of one deleteUsers call.
	MaxDeleteUIDs = 1000
	// MaxPageSize is the largest maxResults of accounts:batchGet.
	MaxPageSize = 1000
)

const (
	apiPrefix       = "/identitytoolkit.googleapis.com/v1/projects/"
	controlPrefix   = "/firebaseprod/v1/projects/"
	writeTimeout    = time.Minute
	shutdownTimeout = 5 * time.Second
)

type config struct {
	addr       string
	maxBody    int64
	retryAfter time.Duration
}

// Option configures a [Server].
type Option func(*config)

// WithAddr listens on addr instead of 127.0.0.1:0 (a free loopback port).
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithMaxBodyBytes caps request bodies at n bytes instead of
// [DefaultMaxBodyBytes].
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithRetryAfter adds a Retry-After header (whole seconds, rounded up) to
// the 503 answers of [Server.SetUnavailable]. The Admin SDK retries a 503
// up to four times over about seven seconds, waiting at least Retry-After,
// and gives up at once when Retry-After exceeds two minutes: outage tests
// that want one attempt per call use a value above two minutes.
func WithRetryAfter(d time.Duration) Option { return func(c *config) { c.retryAfter = d } }

// Server is the stand-in. It is safe for concurrent use.
type Server struct {
	cfg    config
	host   string
	stop   context.CancelFunc
	served chan error

	closeOnce sync.Once
	closeErr  error

	connMu   sync.Mutex
	newConns map[net.Conn]struct{} // accepted, no request read yet

	mu          sync.Mutex
	projects    map[string]*project
	unavailable bool
	frozen      chan struct{} // non-nil while frozen; closed by Thaw
	parked      int
	closed      bool
}

// Start listens on a free loopback port (see [WithAddr]) and serves until
// [Server.Close]. ctx bounds only the listen. It returns an error for an
// invalid option or when it cannot listen.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	cfg := config{addr: "127.0.0.1:0", maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxBody <= 0 {
		return nil, fmt.Errorf("firebaseprod: max body bytes must be positive, got %d", cfg.maxBody)
	}
	if cfg.retryAfter < 0 {
		return nil, fmt.Errorf("firebaseprod: retry-after must not be negative, got %s", cfg.retryAfter)
	}
	ln, err := httpserve.Listen(ctx, cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("firebaseprod: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		host:     ln.Addr().String(),
		served:   make(chan error, 1),
		projects: map[string]*project{},
		newConns: map[net.Conn]struct{}{},
	}
	srv := &http.Server{
		ConnState:         s.trackConn,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      writeTimeout, // lifted while a call is frozen
		IdleTimeout:       2 * time.Minute,
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	go func() { s.served <- httpserve.Serve(sctx, srv, ln, shutdownTimeout) }()
	return s, nil
}

// New starts a Server for a test and closes it when the test ends. It fails
// the test when the server cannot start.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close firebaseprod: %v", err)
		}
	})
	return s
}

// Host is host:port, the value for FIREBASE_AUTH_EMULATOR_HOST.
func (s *Server) Host() string { return s.host }

// Close thaws held calls, stops accepting and lets in-flight calls finish
// (within five seconds). It returns the shutdown error, the same one on
// every call.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.thawLocked()
		s.mu.Unlock()
		s.stop()
		// Shutdown waits five seconds for a connection that has sent no
		// request yet (an HTTP client dials spares); nobody will use them.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			s.closeNewConns()
			select {
			case s.closeErr = <-s.served:
				return
			case <-tick.C:
			}
		}
	})
	return s.closeErr
}

func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if state == http.StateNew {
		s.newConns[c] = struct{}{}
	} else {
		delete(s.newConns, c)
	}
}

func (s *Server) closeNewConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.newConns {
		_ = c.Close()
		delete(s.newConns, c)
	}
}

// SetUnavailable makes every Identity Toolkit call answer 503 UNAVAILABLE
// (true) or be served again (false). Stats stay readable.
func (s *Server) SetUnavailable(on bool) {
	s.mu.Lock()
	s.unavailable = on
	s.mu.Unlock()
}

// Freeze holds every Identity Toolkit call, after its body is read, until
// [Server.Thaw]: the client sees a call that hangs until it gives up, as
// with a Firebase that stopped answering. A held call whose client gave up
// still takes effect at Thaw, as a request that reached production does;
// only its answer is lost. Stats stay readable.
func (s *Server) Freeze() {
	s.mu.Lock()
	if s.frozen == nil && !s.closed {
		s.frozen = make(chan struct{})
	}
	s.mu.Unlock()
}

// Thaw releases the calls held by [Server.Freeze] and serves new ones.
func (s *Server) Thaw() {
	s.mu.Lock()
	s.thawLocked()
	s.mu.Unlock()
}

func (s *Server) thawLocked() {
	if s.frozen != nil {
		close(s.frozen)
		s.frozen = nil
	}
}

// Parked is the number of calls [Server.Freeze] is holding now; tests poll
// it to know a call arrived.
func (s *Server) Parked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked
}

// hold blocks while the server is frozen. The connection's deadlines are
// lifted meanwhile so that only the client decides how long to wait.
func (s *Server) hold(w http.ResponseWriter) {
	s.mu.Lock()
	ch := s.frozen
	if ch != nil {
		s.parked++
	}
	s.mu.Unlock()
	if ch == nil {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	<-ch
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	s.mu.Lock()
	s.parked--
	s.mu.Unlock()
}

func (s *Server) isUnavailable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unavailable
}

// project returns the project with id, creating it.
func (s *Server) project(id string) *project {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[id]
	if !ok {
		p = newProject()
		s.projects[id] = p
	}
	return p
}

// existing returns the project with id, or nil.
func (s *Server) existing(id string) *project {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.projects[id]
}

// call is one decoded request to an endpoint.
type call struct {
	body  []byte
	query url.Values
	now   time.Time
}

// handler serves one endpoint of one project: the response body, or an
// error to answer instead.
type handler func(p *project, c call) (any, *apiError)

func route(method, op string) (handler, bool) {
	switch {
	case method == http.MethodPost && op == EndpointSignUp:
		return signUp, true
	case method == http.MethodPost && op == EndpointLookup:
		return lookup, true
	case method == http.MethodPost && op == EndpointBatchCreate:
		return batchCreate, true
	case method == http.MethodPost && op == EndpointUpdate:
		return update, true
	case method == http.MethodPost && op == EndpointDelete:
		return deleteAccount, true
	case method == http.MethodPost && op == EndpointBatchDelete:
		return batchDelete, true
	case method == http.MethodGet && op == EndpointBatchGet:
		return batchGet, true
	}
	return nil, false
}

// ServeHTTP serves the Identity Toolkit endpoints and the stats endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch path := r.URL.Path; {
	case strings.HasPrefix(path, apiPrefix):
		s.serveAPI(w, r, strings.TrimPrefix(path, apiPrefix))
	case strings.HasPrefix(path, controlPrefix):
		s.serveControl(w, r, strings.TrimPrefix(path, controlPrefix))
	default:
		writeError(w, notFound(r))
	}
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	projectID, op, ok := strings.Cut(rest, "/")
	if !ok || projectID == "" || strings.Contains(op, "/") {
		writeError(w, notFound(r))
		return
	}
	h, ok := route(r.Method, op)
	if !ok {
		writeError(w, notFound(r))
		return
	}
	p := s.project(projectID)
	p.count(op)
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.maxBody))
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeError(w, &apiError{Code: http.StatusRequestEntityTooLarge, Status: "INVALID_ARGUMENT",
					Message: fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", mbe.Limit)})
				return
			}
			writeError(w, badRequest("Invalid JSON payload received: "+err.Error()))
			return
		}
	}
	s.hold(w)
	if s.isUnavailable() {
		p.countUnavailable()
		if s.cfg.retryAfter > 0 {
			secs := int64((s.cfg.retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		writeError(w, &apiError{Code: http.StatusServiceUnavailable, Status: "UNAVAILABLE",
			Message: "The service is currently unavailable.",
			Errors:  []errorItem{{Message: "The service is currently unavailable.", Domain: "global", Reason: "backendError"}}})
		return
	}
	resp, aerr := h(p, call{body: body, query: r.URL.Query(), now: time.Now()})
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// apiError is the "error" member of Google's error body.
type apiError struct {
	Code    int         `json:"code"`
	Message string      `json:"message"`
	Status  string      `json:"status,omitempty"`
	Errors  []errorItem `json:"errors,omitempty"`
}

type errorItem struct {
	Message string `json:"message"`
	Domain  string `json:"domain"`
	Reason  string `json:"reason"`
}

// badRequest is Identity Toolkit's 400: the SDK classifies it by message
// (the part before " : ").
func badRequest(message string) *apiError {
	return &apiError{Code: http.StatusBadRequest, Message: message,
		Errors: []errorItem{{Message: message, Domain: "global", Reason: "invalid"}}}
}

func notFound(r *http.Request) *apiError {
	msg := fmt.Sprintf("%s %s is not served by firebaseprod.", r.Method, r.URL.Path)
	return &apiError{Code: http.StatusNotFound, Status: "NOT_FOUND", Message: msg,
		Errors: []errorItem{{Message: msg, Domain: "global", Reason: "notFound"}}}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Code, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":500,"message":"INTERNAL_ERROR","status":"INTERNAL"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
