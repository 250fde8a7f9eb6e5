package ingest

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/signupsync/signupsync/internal/httpserve"
)

// maxHeaderBytes bounds the request headers the server reads. It bounds the
// work of [WebhookVerifier.Verify] too: a webhook-signature longer than
// this is refused unread.
const maxHeaderBytes = 32 << 10

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
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          nil,
	}
	s.log.InfoContext(ctx, "ingest listening", "addr", ln.Addr().String())
	if err := httpserve.Serve(ctx, srv, ln, s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	s.log.InfoContext(ctx, "ingest stopped")
	return nil
}

// Listen opens the TCP listener of cfg.Addr.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	return httpserve.Listen(ctx, addr)
}
