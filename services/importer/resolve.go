package importer

import (
	"context"
	"net/mail"
	"strings"
	"sync"

	"firebase.google.com/go/v4/auth"

	"github.com/signupsync/signupsync/events"
)

// Resolve: look every candidate up in Firebase and decide what exists.

// lookupKey joins a provider id and the provider's user id.
func lookupKey(provider, rawID string) string { return provider + "\x00" + rawID }

// index holds what Firebase returned for a batch's look-ups.
type index struct {
	byUID      map[string]*auth.UserRecord
	byEmail    map[string]*auth.UserRecord
	byProvider map[string]string
}

func (x *index) add(recs []*auth.UserRecord) {
	for _, r := range recs {
		x.byUID[r.UID] = r
		if r.Email != "" {
			x.byEmail[strings.ToLower(r.Email)] = r
		}
		for _, p := range r.ProviderUserInfo {
			x.byProvider[lookupKey(p.ProviderID, p.UID)] = r.UID
		}
	}
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

func identifiers(it *item) []auth.UserIdentifier {
	ids := []auth.UserIdentifier{
		auth.UIDIdentifier{UID: it.uid},
		auth.ProviderIdentifier{ProviderID: it.elig.FirebaseProvider, ProviderUID: it.elig.Identity.UserID},
	}
	if e := strings.ToLower(it.data.Email); e != "" && validEmail(e) {
		ids = append(ids, auth.EmailIdentifier{Email: e})
	}
	return ids
}

// lookup fetches the Firebase accounts matching the candidates' uid,
// provider id and email, 100 identifiers per GetUsers call. Candidates
// whose look-up failed get their decision here.
func (im *Importer) lookup(ctx context.Context, cands []*item) *index {
	x := &index{byUID: map[string]*auth.UserRecord{}, byEmail: map[string]*auth.UserRecord{}, byProvider: map[string]string{}}
	var chunks [][]*item
	var cur []*item
	n := 0
	for _, c := range cands {
		if c.ids == nil {
			c.ids = identifiers(c)
		}
		k := len(c.ids)
		if n+k > 100 {
			chunks = append(chunks, cur)
			cur, n = nil, 0
		}
		cur = append(cur, c)
		n += k
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	var mu sync.Mutex
	var get func(chunk []*item)
	get = func(chunk []*item) {
		var ids []auth.UserIdentifier
		for _, c := range chunk {
			ids = append(ids, c.ids...)
		}
		var res *auth.GetUsersResult
		err := im.firebase(ctx, "GetUsers", func(ctx context.Context) error {
			r, err := im.accounts.GetUsers(ctx, ids)
			res = r
			return classifyFirebase("GetUsers", err)
		})
		switch {
		case err == nil:
			mu.Lock()
			x.add(res.Users)
			mu.Unlock()
		case IsTransient(err):
			for _, c := range chunk {
				c.retry(err, retryAfter(err))
			}
		case len(chunk) > 1:
			// One bad identifier fails the whole call: look up one by one to
			// isolate it.
			for _, c := range chunk {
				get([]*item{c})
			}
		default:
			chunk[0].deadLetter(events.ReasonPermanentError, err)
		}
	}
	sem := make(chan struct{}, min(4, im.cfg.Concurrency))
	var wg sync.WaitGroup
	for _, ch := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			get(ch)
		}()
	}
	wg.Wait()
	return x
}

// resolve looks up the candidates that hold their claims, decides every
// one that Firebase already knows about and returns those to import.
func (im *Importer) resolve(ctx context.Context, cands []*item) []*item {
	held := undecidedOf(cands)
	if len(held) == 0 {
		return nil
	}
	x := im.lookup(ctx, held)
	var out, byEmail []*item
	owners := map[*item]*auth.UserRecord{}
	for _, c := range held {
		if c.decision != undecided {
			continue
		}
		fp, raw := c.elig.FirebaseProvider, c.elig.Identity.UserID
		email := strings.ToLower(c.data.Email)
		if rec, ok := x.byUID[c.uid]; ok {
			if x.byProvider[lookupKey(fp, raw)] == rec.UID {
				c.settle(sameUIDAndProvider(rec, c.data.UserID))
			} else {
				c.settle(events.OutcomeConflict, events.ReasonUIDTaken, rec.UID, "uid exists without this provider identity")
			}
			continue
		}
		if uid, ok := x.byProvider[lookupKey(fp, raw)]; ok {
			c.settle(events.OutcomeAlreadyPresent, events.ReasonProviderElsewhere, uid, "")
			continue
		}
		if rec, ok := x.byEmail[email]; ok && email != "" {
			byEmail, owners[c] = append(byEmail, c), rec
			continue
		}
		// Its claims make this importer the only one that may create the
		// account: no other attempt holds its uid, provider identity or
		// email, in this batch or anywhere else.
		out = append(out, c)
	}
	// The link policy may read the Management API and write to Firebase
	// for each of these: side by side.
	im.parallel(byEmail, func(c *item) { im.applyEmailPolicy(ctx, c, owners[c]) })
	return out
}

// applyEmailPolicy handles a candidate whose email belongs to rec.
func (im *Importer) applyEmailPolicy(ctx context.Context, c *item, rec *auth.UserRecord) {
	switch im.cfg.EmailPolicy {
	case EmailSkip:
		c.settle(events.OutcomeSkipped, events.ReasonEmailInUse, rec.UID, "")
	case EmailLink:
		im.link(ctx, c, rec)
	default:
		c.settle(events.OutcomeConflict, events.ReasonEmailInUse, rec.UID, "")
	}
}

// sameUIDAndProvider is the outcome of a look-up that finds the user's
// account at its uid with its identity: imported (reason import_landed) when
// the account carries signupsync's claim for this user — an earlier attempt
// whose ImportUsers got no answer, or whose process died before the ledger
// write, landed — else already_present. The distinction matters after the
// import: lifecycle events (deletions, profile changes) act only on accounts
// the ledger says signupsync created.
func sameUIDAndProvider(rec *auth.UserRecord, auth0UserID string) (events.Outcome, string, string, string) {
	if ours(rec, auth0UserID) {
		return events.OutcomeImported, events.ReasonImportLanded, rec.UID, ""
	}
	return events.OutcomeAlreadyPresent, events.ReasonSameUIDAndProvider, rec.UID, ""
}

// ours reports whether rec carries signupsync's auth0_user_id claim for
// auth0UserID (set by every import, see mapping.go).
func ours(rec *auth.UserRecord, auth0UserID string) bool {
	if rec == nil || rec.CustomClaims == nil {
		return false
	}
	v, _ := rec.CustomClaims[ClaimAuth0ID].(string)
	return v == auth0UserID && v != ""
}
