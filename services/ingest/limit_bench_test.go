package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/loadgen"
)

// BenchmarkHTTPLimit is the HTTP limit of `make bench` ("limit: ingest
// HTTP, no-op publisher"): the receivers in process — signature check,
// strict parse, schema validation, normalisation — behind a publisher that
// acknowledges without storing, driven over loopback by the load
// generator, closed loop with 64 clients. Each of the b.N requests is a new
// user's signed Action webhook, signed before the timer starts so signing
// costs the generator nothing, and every answer must be 202. It reports
// req/s, which internal/bench reads from this package's test binary (a
// command in internal/ may not import a service). Alone:
//
//	go test -run '^$' -bench '^BenchmarkHTTPLimit$' -benchtime 40000x ./services/ingest/
func BenchmarkHTTPLimit(b *testing.B) {
	srv := benchService(b, noopPublisher{})
	type signed struct {
		body   []byte
		header http.Header
	}
	reqs := make([]signed, b.N)
	now := time.Now()
	for i := range reqs {
		body := []byte(fmt.Sprintf(`{"trigger":"post-login","tenant":"bench","connection":{"id":"c","name":"google-oauth2","strategy":"google-oauth2"},"stats":{"logins_count":1},"user":{"user_id":"google-oauth2|%d","email":"b%d@example.com","email_verified":true,"name":"Bench User","picture":"https://example.com/p.png","created_at":"2026-11-01T10:00:00.000Z","identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"%d","isSocial":true}]}}`, i, i, i))
		h := http.Header{"Content-Type": {"application/json"}}
		if err := SignHeaders(h, testSecret, "msg_"+strconv.Itoa(i), now, body); err != nil {
			b.Fatal(err)
		}
		reqs[i] = signed{body: body, header: h}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}
	b.ResetTimer()
	res := loadgen.ClosedLoop(context.Background(), 64, len(reqs), func(ctx context.Context, i int) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+PathAction, bytes.NewReader(reqs[i].body))
		if err != nil {
			return 0, err
		}
		req.Header = reqs[i].header.Clone()
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	})
	b.StopTimer()
	if res.Statuses[http.StatusAccepted] != len(reqs) {
		b.Fatalf("statuses %v, errors %d: want %d × 202", res.Statuses, res.Errors, len(reqs))
	}
	b.ReportMetric(res.Throughput(), "req/s")
}
