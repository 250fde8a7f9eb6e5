package importer

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/signupsync/signupsync/events"
)

func sortedProviders() []string {
	var out []string
	for p := range events.SocialProviders() {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func TestProviderMappings(t *testing.T) {
	e := newEnv(t)
	e.start()
	providers := events.SocialProviders()
	for i, p := range sortedProviders() {
		e.publish(events.SourceAction, social(p, fmt.Sprint(70000+i), "map-"+p+"@example.com"), 0)
	}
	e.idle()
	ctx := context.Background()
	for i, p := range sortedProviders() {
		t.Run(p, func(t *testing.T) {
			raw := fmt.Sprint(70000 + i)
			id := p + "|" + raw
			le := e.entry(id)
			if le.Outcome != events.OutcomeImported || le.FirebaseUID != id || len(le.Sources) != 1 || le.Sources[0] != events.SourceAction {
				t.Fatalf("ledger %+v", le)
			}
			u, err := e.fb.GetUser(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != "map-"+p+"@example.com" || !u.EmailVerified || u.DisplayName != "Person "+raw || u.PhotoURL != "https://example.com/"+raw+".png" {
				t.Fatalf("profile %+v", u.UserInfo)
			}
			if len(u.ProviderUserInfo) != 1 || u.ProviderUserInfo[0].ProviderID != providers[p] || u.ProviderUserInfo[0].UID != raw {
				t.Fatalf("providers %+v", u.ProviderUserInfo[0])
			}
			if u.CustomClaims[ClaimAuth0ID] != id {
				t.Fatalf("claims %v", u.CustomClaims)
			}
			if u.UserMetadata.CreationTimestamp != 1793527200000 {
				t.Fatalf("created %d", u.UserMetadata.CreationTimestamp)
			}
		})
	}
	if got := len(e.accounts()); got != len(providers) {
		t.Fatalf("%d accounts, want %d", got, len(providers))
	}
}
