package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/services/ingest"
)

// sampleCmd is `signupsync sample`: it posts one correctly signed Action
// webhook for a new Google signup, as the post-login Action would, and
// prints the answer.
type sampleCmd struct {
	URL           urls       `name:"url" envvar:"SIGNUPSYNC_SAMPLE_URL" default:"http://127.0.0.1:8080" help:"Base URL of the ingest service."`
	ActionSecrets secretList `name:"action-secrets" envvar:"SIGNUPSYNC_ACTION_SECRETS" cfg:"sample.ActionSecrets" help:"Action secret to sign with (the first is used)."`
	UserID        string     `name:"user-id" cfg:"sample.UserID" help:"Auth0 user_id of the sample (default: a random google-oauth2 id)."`
	Email         string     `name:"email" help:"Email of the sample (default: derived from the id)."`
}

func (c *sampleCmd) Run(ctx context.Context, e env) error {
	if len(c.ActionSecrets.list) == 0 {
		return e.usage(errors.New("sample: ActionSecrets is required"), "sample")
	}
	raw := c.UserID
	if raw == "" {
		raw = fmt.Sprintf("google-oauth2|%d", mrand.Uint64())
	}
	provider, sub, ok := strings.Cut(raw, "|")
	if !ok {
		return e.usage(fmt.Errorf("sample: UserID %q: want provider|id", raw), "sample")
	}
	mail := c.Email
	if mail == "" {
		mail = "sample-" + sub + "@example.com"
	}
	body := fmt.Sprintf(`{"trigger":"post-login","tenant":"dev","connection":{"id":"con_sample","name":%[2]q,"strategy":%[2]q},"stats":{"logins_count":1},"user":{"user_id":%[1]q,"email":%[4]q,"email_verified":true,"name":"Sample Person","given_name":"Sample","family_name":"Person","picture":"https://example.com/sample.png","created_at":%[5]q,"identities":[{"provider":%[2]q,"connection":%[2]q,"user_id":%[3]q,"isSocial":true}]}}`,
		raw, provider, sub, mail, time.Now().UTC().Format(time.RFC3339))
	idb := make([]byte, 12)
	_, _ = rand.Read(idb)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(string(c.URL), "/")+ingest.PathAction, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := ingest.SignHeaders(req.Header, c.ActionSecrets.list[0], "msg_"+hex.EncodeToString(idb), time.Now(), []byte(body)); err != nil {
		return e.usage(fmt.Errorf("sample: ActionSecrets: %w", err), "sample")
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("post sample: %w", err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	fmt.Fprintf(e.stdout, "POST %s -> %s\n%s", rolerun.RedactURLs(req.URL.String()), res.Status, out)
	fmt.Fprintf(e.stdout, "user_id: %s\n", raw)
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingest answered %s", res.Status)
	}
	return nil
}
