package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// The variables ingest reads its credentials from, which [Secrets.WriteEnv]
// writes.
const (
	EnvActionSecrets    = "SIGNUPSYNC_ACTION_SECRETS"
	EnvEventStreamToken = "SIGNUPSYNC_EVENT_STREAM_TOKEN"
	EnvLogStreamToken   = "SIGNUPSYNC_LOG_STREAM_TOKEN"
)

// Secrets are the credentials ingest must be configured with so that it
// accepts what the installed Actions and streams send. Only the parts
// installed have a value. Printing a Secrets with fmt or slog shows which
// are set, never their values: [Secrets.WriteEnv] and
// [Secrets.WriteEnvFile] are the one way out.
type Secrets struct {
	// ActionSecret is the Standard Webhooks secret of the Actions
	// (SIGNUPSYNC_ACTION_SECRETS).
	ActionSecret string
	// EventStreamToken is the Event Streams bearer token
	// (SIGNUPSYNC_EVENT_STREAM_TOKEN).
	EventStreamToken string
	// LogStreamToken is the Log Streams Authorization value
	// (SIGNUPSYNC_LOG_STREAM_TOKEN).
	LogStreamToken string
}

func (s Secrets) pairs() [][2]string {
	var out [][2]string
	for _, p := range [][2]string{{EnvActionSecrets, s.ActionSecret}, {EnvEventStreamToken, s.EventStreamToken}, {EnvLogStreamToken, s.LogStreamToken}} {
		if p[1] != "" {
			out = append(out, p)
		}
	}
	return out
}

// WriteEnv writes the set secrets as KEY=value lines, the format of
// `docker run --env-file`, compose's env_file, systemd's EnvironmentFile and
// `kubectl create secret generic --from-env-file`. Values never hold spaces,
// quotes or newlines (Config.Validate and the generator see to it).
func (s Secrets) WriteEnv(w io.Writer) error {
	var b strings.Builder
	for _, p := range s.pairs() {
		b.WriteString(p[0] + "=" + p[1] + "\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	return nil
}

// WriteEnvFile writes [Secrets.WriteEnv]'s lines to path with mode 0600,
// replacing the file atomically (a file written next to it, then renamed),
// so a reader never sees half of it and a file that was more open ends up
// 0600 too.
func (s Secrets) WriteEnvFile(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	if err := s.WriteEnv(f); err != nil {
		return fmt.Errorf("write secrets file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write secrets file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secrets file %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	return nil
}

// String names the secrets that are set, without their values.
func (s Secrets) String() string {
	names := make([]string, 0, 3)
	for _, p := range s.pairs() {
		names = append(names, p[0]+"=<set>")
	}
	return "tenant.Secrets{" + strings.Join(names, " ") + "}"
}

// Format prints [Secrets.String] for every verb, %#v and %+v included.
func (s Secrets) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue keeps the values out of slog records.
func (s Secrets) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the values out of JSON: each set secret is "<set>".
func (s Secrets) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range s.pairs() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", p[0], "<set>")
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// newWebhookSecret returns "whsec_" and the base64 of 24 random bytes, the
// size deploy/auth0/README.md recommends (ingest and the Actions need 16).
func newWebhookSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(24))
}

// newToken returns 32 random bytes in unpadded base64url: 256 bits, no
// characters a header, an env file or a comma-separated list would mangle.
func newToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
	return b
}

// digest is the short fingerprint of one secret an Action was installed
// with, kept in the Action's code (see desiredCode): base64url of
// SHA-256(domain, action, name, value), 96 bits. It tells a re-run whether
// the value it would install is the one installed, which Auth0 cannot say
// since it never returns secret values. For generated secrets (192 bits
// and more) and any value of comparable entropy the digest reveals
// nothing; for a guessable value it allows confirming a guess to whoever
// can read the Action's code, who can already replace the secret.
func digest(action, name, value string) string {
	sum := sha256.Sum256([]byte("signupsync-install-v1\x00" + action + "\x00" + name + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
