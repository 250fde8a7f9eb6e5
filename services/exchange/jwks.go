package exchange

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxJWKSBytes bounds a JWKS response.
const maxJWKSBytes = 1 << 20

// coldRetry spaces fetch attempts while no keys are known at all, so an
// issuer outage at start-up is retried often but not once per request.
const coldRetry = time.Second

// keyCache holds the issuer's RSA signing keys by kid. Reads are lock-free;
// fetches are serialised, and those triggered by an unknown kid happen at
// most once per minInterval, so tokens with made-up kids cannot make the
// service hammer the issuer. Keys older than maxAge are fetched again by
// one request while the others keep using them.
//
// It parses with jwx's jwk package but does its own caching rather than
// using jwk.Cache: that cache (httprc v1) schedules another perpetual
// background refresh on every forced refresh and cannot bound the rate.
type keyCache struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	maxAge      time.Duration
	timeout     time.Duration
	now         func() time.Time
	// onFetch, when set, observes every fetch decision: "ok", "error",
	// "throttled".
	onFetch func(result string)

	snap atomic.Pointer[keySnapshot]

	mu          sync.Mutex // serialises fetches; guards lastAttempt
	lastAttempt time.Time
}

type keySnapshot struct {
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

func newKeyCache(url string, client *http.Client, minInterval, maxAge, timeout time.Duration, now func() time.Time) *keyCache {
	return &keyCache{url: url, client: client, minInterval: minInterval, maxAge: maxAge, timeout: timeout, now: now}
}

func (c *keyCache) observe(result string) {
	if c.onFetch != nil {
		c.onFetch(result)
	}
}

// warm fetches the keys, at most once per minInterval like every other
// fetch: a caller that asks more often (/readyz while the issuer is down,
// polled by anyone) gets the state of the last attempt and causes no
// request to the issuer.
func (c *keyCache) warm(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lastAttempt.IsZero() && c.now().Sub(c.lastAttempt) < c.minInterval {
		if c.snap.Load() != nil {
			return nil
		}
		return fmt.Errorf("%w: last fetch failed, next allowed in %s", ErrKeysUnavailable, (c.minInterval - c.now().Sub(c.lastAttempt)).Round(time.Second))
	}
	return c.fetchLocked(ctx)
}

// key returns the key named kid. It returns an error matching
// ErrUnknownKey when the issuer does not publish kid (after at most one
// rate-limited fetch), and ErrKeysUnavailable when no keys are known.
func (c *keyCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	if s := c.snap.Load(); s != nil {
		if k, ok := s.keys[kid]; ok {
			if c.now().Sub(s.fetched) <= c.maxAge || !c.mu.TryLock() {
				return k, nil
			}
			// Stale: this request refreshes; a failure keeps the old keys.
			if c.snap.Load() == s && c.now().Sub(c.lastAttempt) >= c.minInterval {
				_ = c.fetchLocked(ctx)
			}
			c.mu.Unlock()
			if k, ok := c.snap.Load().keys[kid]; ok {
				return k, nil
			}
			return nil, fmt.Errorf("%w: kid %q no longer published", ErrUnknownKey, truncate(kid, 64))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snap.Load()
	if s != nil {
		if k, ok := s.keys[kid]; ok {
			return k, nil // fetched while we waited
		}
	}
	wait := c.minInterval
	if s == nil {
		wait = min(wait, coldRetry)
	}
	if !c.lastAttempt.IsZero() && c.now().Sub(c.lastAttempt) < wait {
		c.observe("throttled")
		if s == nil {
			return nil, fmt.Errorf("%w: last fetch failed", ErrKeysUnavailable)
		}
		return nil, fmt.Errorf("%w: kid %q (refresh throttled)", ErrUnknownKey, truncate(kid, 64))
	}
	if err := c.fetchLocked(ctx); err != nil {
		if s == nil {
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
		}
		return nil, fmt.Errorf("%w: kid %q (refresh failed: %v)", ErrUnknownKey, truncate(kid, 64), err)
	}
	if k, ok := c.snap.Load().keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, truncate(kid, 64))
}

// fetchLocked fetches and replaces the key set; c.mu must be held. The fetch
// is detached from the caller's cancellation (a client hanging up must not
// waste the rate-limited attempt) and bounded by the timeout.
func (c *keyCache) fetchLocked(ctx context.Context) error {
	c.lastAttempt = c.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	keys, err := c.fetch(ctx)
	if err != nil {
		c.observe("error")
		return fmt.Errorf("fetch jwks: %w", err)
	}
	c.observe("ok")
	c.snap.Store(&keySnapshot{keys: keys, fetched: c.now()})
	return nil
}

func (c *keyCache) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("status %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", maxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey, set.Len())
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || !usable(k) {
			continue
		}
		pk, err := k.PublicKey()
		if err != nil {
			continue
		}
		var pub rsa.PublicKey
		if err := pk.Raw(&pub); err != nil || pub.N.BitLen() < 2048 {
			continue
		}
		keys[k.KeyID()] = &pub
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks holds no usable RS256 signing key")
	}
	return keys, nil
}

// usable keeps RSA signature keys with a kid that are not restricted to
// another algorithm.
func usable(k jwk.Key) bool {
	if k.KeyType() != jwa.RSA || k.KeyID() == "" {
		return false
	}
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return false
	}
	if a := k.Algorithm(); a != nil && a.String() != "" && a.String() != allowedAlg.String() {
		return false
	}
	return true
}
