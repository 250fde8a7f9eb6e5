package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// Errors returned by [WebhookVerifier.Verify]. All of them mean 401.
var (
	ErrMissingSignatureHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp            = errors.New("webhook-timestamp is not a unix time in decimal digits")
	ErrTimestampTooOld         = errors.New("webhook-timestamp is older than the tolerance")
	ErrTimestampInFuture       = errors.New("webhook-timestamp is further in the future than the tolerance")
	ErrNoMatchingSignature     = errors.New("no signature matches a configured secret")
	ErrSignatureHeaderTooLong  = errors.New("webhook-signature is longer than the header limit")
)

// WebhookVerifier checks Standard Webhooks signatures: HMAC-SHA256 with
// a "whsec_" base64 secret over "id.timestamp.body", sent as space-separated
// "v1,<base64>" entries. Several secrets may be configured for rotation; one
// matching signature from one secret suffices. It is safe for concurrent use.
type WebhookVerifier struct {
	secrets   [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// NewWebhookVerifier parses secrets ("whsec_<base64>" or bare base64). now is
// the clock; nil means time.Now.
func NewWebhookVerifier(secrets []string, tolerance time.Duration, now func() time.Time) (*WebhookVerifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook verifier: no secret configured")
	}
	if tolerance <= 0 {
		return nil, fmt.Errorf("webhook verifier: tolerance %s must be positive", tolerance)
	}
	if now == nil {
		now = time.Now
	}
	v := &WebhookVerifier{tolerance: tolerance, now: now}
	for i, s := range secrets {
		key, err := DecodeWebhookSecret(s)
		if err != nil {
			return nil, fmt.Errorf("webhook verifier: secret %d: %w", i+1, err)
		}
		v.secrets = append(v.secrets, key)
	}
	return v, nil
}

// DecodeWebhookSecret returns the key bytes of a "whsec_<base64>" secret.
func DecodeWebhookSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "whsec_"))
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64 after whsec_: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("key is %d bytes, want at least 16", len(key))
	}
	return key, nil
}

// Verify checks the signature headers of a request against its raw body.
// Every v1 signature of webhook-signature is tried; a value longer than the
// server's header limit is refused with [ErrSignatureHeaderTooLong]
// before any is parsed.
func (v *WebhookVerifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingSignatureHeaders
	}
	if len(sigs) > maxHeaderBytes {
		return ErrSignatureHeaderTooLong
	}
	sec, err := parseTimestamp(ts)
	if err != nil {
		return err
	}
	now := v.now().Unix()
	tol := int64(v.tolerance / time.Second)
	switch {
	case sec < now-tol:
		return ErrTimestampTooOld
	case sec > now+tol:
		return ErrTimestampInFuture
	}
	candidates := ParseSignatureHeader(sigs)
	if len(candidates) == 0 {
		return ErrNoMatchingSignature
	}
	for _, key := range v.secrets {
		want := Sign(key, id, ts, body)
		for _, got := range candidates {
			if hmac.Equal(want, got) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

// parseTimestamp reads a webhook-timestamp: seconds since the epoch as an
// unsigned decimal integer, which is how Standard Webhooks writes it. A
// sign, which strconv.ParseInt would take ("+1800000000"), is refused.
func parseTimestamp(ts string) (int64, error) {
	n, err := strconv.ParseUint(ts, 10, 64) // digits only: no sign, no "_"
	if err != nil || n > math.MaxInt64 {
		return 0, ErrBadTimestamp
	}
	return int64(n), nil
}

// Sign computes the raw v1 signature of a webhook.
func Sign(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader renders the webhook-signature value for one raw signature.
func SignatureHeader(sig []byte) string { return "v1," + base64.StdEncoding.EncodeToString(sig) }

// ParseSignatureHeader returns every decoded v1 signature of a
// webhook-signature value, ignoring other versions and malformed entries.
// Its work is linear in len(v), which Verify bounds by the server's header
// limit; only entries of a signature's exact length are decoded.
func ParseSignatureHeader(v string) [][]byte {
	sigLen := base64.StdEncoding.EncodedLen(sha256.Size)
	var out [][]byte
	for entry := range strings.FieldsSeq(v) {
		ver, sig, ok := strings.Cut(entry, ",")
		if !ok || ver != "v1" || len(sig) != sigLen {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		out = append(out, raw)
	}
	return out
}

// SignHeaders sets the Standard Webhooks headers of a request whose body is
// body, signed with secret ("whsec_..."). Senders (the load generator, the
// sample command, tests) use it; the Auth0 Actions do the same in JavaScript.
func SignHeaders(h http.Header, secret, id string, at time.Time, body []byte) error {
	key, err := DecodeWebhookSecret(secret)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, ts)
	h.Set(HeaderWebhookSignature, SignatureHeader(Sign(key, id, ts, body)))
	return nil
}
