// Package httpserve runs an http.Server until its context ends and then
// shuts it down gracefully: the one serve loop of every signupsync role
// with an HTTP API, and the admin endpoints (/healthz, /readyz, /metrics)
// every long-running role serves on a listener of its own.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx is cancelled, then stops accepting and
// lets in-flight requests finish within shutdownTimeout. It returns nil on
// a clean stop, or the serve or shutdown error.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, shutdownTimeout time.Duration) error {
	s := Start(srv, ln)
	select {
	case <-s.Done():
		return fmt.Errorf("serve %s: %w", s.addr, s.err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}

// Server is an http.Server serving in the background ([Start]) until
// [Server.Shutdown]. Its methods are safe for concurrent use.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{}
	err  error // of srv.Serve, read after done is closed
}

// Start serves srv on ln in a goroutine. The caller must call
// [Server.Shutdown] once, also after [Server.Done] is closed.
func Start(srv *http.Server, ln net.Listener) *Server {
	s := &Server{srv: srv, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		s.err = srv.Serve(ln)
		close(s.done)
	}()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Done is closed when the server stopped serving: after Shutdown, or on its
// own when accepting failed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops accepting and waits, until ctx ends, for in-flight
// requests to finish. It returns nil on a clean stop, else the serve or
// shutdown error naming the address.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
		if s.err != nil && !errors.Is(s.err, http.ErrServerClosed) {
			err = errors.Join(err, s.err)
		}
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("shutdown %s: %w", s.addr, err)
	}
	return nil
}

// Listen opens a TCP listener on addr.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
