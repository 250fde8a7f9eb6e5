package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// pathAction is ingest's Action receiver, as the Auth0 Actions post to it.
const pathAction = "/v1/hooks/auth0-action"

// signWebhook sets the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature) of a request whose body is body, as
// the Auth0 Actions do: v1, an HMAC-SHA256 with key over "id.timestamp.body".
// The bench is a client of ingest like the Actions, so it signs on its own
// rather than importing the service; bench_test.go checks it against the
// specification's example.
func signWebhook(h http.Header, key []byte, id string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
}
