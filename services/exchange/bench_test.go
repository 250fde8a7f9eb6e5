package exchange_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/exchange"
)

// BenchmarkExchangeWarmCache measures exchanges per second over HTTP on
// loopback for a person already imported, with the JWKS cached: token
// verification (RS256), the account look-up (the ledger, or Firebase by uid
// against the emulator) and minting the custom token (unsigned by the Admin
// SDK in emulator mode, so production adds an RS256 signature or an IAM
// signBlob call per exchange).
func BenchmarkExchangeWarmCache(b *testing.B) {
	for _, via := range []string{exchange.ViaLedger, exchange.ViaFirebaseUID} {
		b.Run(via, func(b *testing.B) {
			e := newEnv(b, func(c *exchange.Config) { // limits out of the way
				c.SubjectRate, c.SubjectBurst, c.IPRate, c.IPBurst = 1e9, 1<<30, 1e9, 1<<30
			})
			const sub = "google-oauth2|bench"
			e.firebaseAccount(sub, "google.com", "bench")
			if via == exchange.ViaLedger {
				e.setLedger(events.LedgerEntry{Auth0UserID: sub, Outcome: events.OutcomeImported, FirebaseUID: sub})
			}
			tok := e.iss.Token(sub)
			if a := e.post(tok); a.status != http.StatusOK { // warms the JWKS cache
				b.Fatalf("warm-up: %d %s", a.status, a.raw)
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			url := e.srv.URL + exchange.PathExchange
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, url, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"uid":"google-oauth2|bench"`) {
						b.Errorf("%d %s", res.StatusCode, body)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
		})
	}
}
