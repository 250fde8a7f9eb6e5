package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// Serve runs the ingest HTTP server on ln until ctx is cancelled, then shuts
// it down gracefully: it stops accepting, lets in-flight requests (and their
// JetStream acknowledgements) finish within ShutdownTimeout, and returns.
// ready, when not nil, is called once the server accepts connections.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.InfoContext(ctx, "ingest listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("ingest server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("ingest shutdown: %w", err)
	}
	s.log.InfoContext(ctx, "ingest stopped")
	return nil
}

// Listen opens the TCP listener of cfg.Addr.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
