package testenv

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"
)

// ExportTruth is what a generated Auth0 export contains.
type ExportTruth struct {
	Lines     int
	Malformed int
	// Users counts distinct users by expected outcome: "imported" or the
	// skip reason.
	Users map[string]int
	// Eligible lists the distinct user ids that must end up in Firebase.
	Eligible []string
	// Duplicated is how many lines repeat an earlier user.
	Duplicated int
}

// Distinct is the number of distinct users.
func (t ExportTruth) Distinct() int {
	n := 0
	for _, v := range t.Users {
		n += v
	}
	return n
}

var exportProviders = []string{"google-oauth2", "facebook", "apple", "twitter", "github", "windowslive", "yahoo"}

// WriteExport writes an Auth0 users export (format json: one user object per
// line) of about n users to path, gzipped when gz: mostly unlinked social
// users, plus database users, linked accounts, enterprise users, repeated
// lines and malformed lines, and returns what it wrote.
func WriteExport(t testing.TB, path string, n int, gz bool) ExportTruth {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	truth := ExportTruth{Users: map[string]int{}}
	line := func(s string) {
		truth.Lines++
		bw.WriteString(s)
		bw.WriteByte('\n')
	}
	last := ""
	for i := 0; i < n; i++ {
		if i > 0 && i%997 == 0 {
			truth.Malformed++
			if i%2 == 0 {
				line(`{"user_id": "google-oauth2|broken`)
			} else {
				line(`this is not json`)
			}
		}
		created := fmt.Sprintf("2026-10-%02dT%02d:%02d:%02d.000Z", 1+i%28, i%24, i%60, (i/60)%60)
		switch k := i % 20; {
		case k < 14:
			p := exportProviders[i%len(exportProviders)]
			id := fmt.Sprintf("%s|%d", p, 100000+i)
			last = fmt.Sprintf(`{"user_id":%q,"email":"u%d@example.com","email_verified":true,"name":"User %d","picture":"https://example.com/%d.png","created_at":%q,"identities":[{"provider":%q,"connection":%q,"user_id":"%d","isSocial":true}]}`, id, i, i, i, created, p, p, 100000+i)
			line(last)
			truth.Users["imported"]++
			truth.Eligible = append(truth.Eligible, id)
		case k < 16:
			line(fmt.Sprintf(`{"user_id":"auth0|db%d","email":"db%d@example.com","email_verified":false,"created_at":%q,"identities":[{"provider":"auth0","connection":"Username-Password-Authentication","user_id":"db%d","isSocial":false}]}`, i, i, created, i))
			truth.Users["database_connection"]++
		case k == 16:
			line(fmt.Sprintf(`{"user_id":"google-oauth2|l%d","email":"l%d@example.com","email_verified":true,"created_at":%q,"identities":[{"provider":"google-oauth2","connection":"google-oauth2","user_id":"l%d","isSocial":true},{"provider":"github","connection":"github","user_id":%d,"isSocial":true}]}`, i, i, created, i, 900000+i))
			truth.Users["linked_identities"]++
		case k == 17:
			line(fmt.Sprintf(`{"user_id":"samlp|corp|e%d","email":"e%d@example.com","created_at":%q,"identities":[{"provider":"samlp","connection":"corp","user_id":"corp|e%d","isSocial":false}]}`, i, i, created, i))
			truth.Users["enterprise_connection"]++
		case k == 18:
			line(last) // the same user again, as an export merge or a retry writes it
			truth.Duplicated++
		default:
			id := fmt.Sprintf("github|%d", 12345678901234+i)
			line(fmt.Sprintf(`{"user_id":%q,"email":"gh%d@example.com","email_verified":true,"nickname":"gh%d","created_at":%q,"identities":[{"provider":"github","connection":"github","user_id":%d,"isSocial":true}]}`, id, i, i, created, 12345678901234+i))
			truth.Users["imported"]++
			truth.Eligible = append(truth.Eligible, id)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(truth.Eligible)
	return truth
}
