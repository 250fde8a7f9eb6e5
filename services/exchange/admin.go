package exchange

import (
	"context"
	"errors"
)

// ErrNotReady is what [Service.Ready] wraps when the exchange cannot serve.
var ErrNotReady = errors.New("exchange not ready")

// Ready reports whether the exchange can serve: the broker answers
// (Deps.Ready) and the issuer's signing keys are loaded. While no keys are
// loaded it fetches them, through the verifier's once-per-interval
// throttle, so frequent probes cause at most one fetch per
// JWKSRefreshInterval. It is safe for concurrent use.
func (s *Service) Ready(ctx context.Context) error {
	err := s.ready(ctx)
	if err == nil && s.verifier.keys.snap.Load() == nil {
		err = s.verifier.Warm(ctx)
	}
	if err != nil {
		return errors.Join(ErrNotReady, err)
	}
	return nil
}
