package tenant_test

import (
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/tenant"
)

func TestValidateNamesTheField(t *testing.T) {
	valid := func() tenant.Config {
		c := tenant.DefaultConfig()
		c.Domain, c.Token, c.IngestURL = "example.eu.auth0.com", "tok", "https://signupsync.example.com"
		return c
	}
	tests := []struct {
		name   string
		mutate func(*tenant.Config)
		want   string // "" for valid
	}{
		{"defaults with credentials and URL", func(*tenant.Config) {}, ""},
		{"client credentials", func(c *tenant.Config) { c.Token, c.ClientID, c.ClientSecret = "", "id", "secret" }, ""},
		{"https domain", func(c *tenant.Config) { c.Domain = "https://example.eu.auth0.com" }, ""},
		{"a path prefix", func(c *tenant.Config) { c.IngestURL = "https://example.com/signupsync/" }, ""},
		{"no domain", func(c *tenant.Config) { c.Domain = "" }, "Domain is required"},
		{"domain with a path", func(c *tenant.Config) { c.Domain = "example.eu.auth0.com/api/v2" }, "Domain"},
		{"both credentials", func(c *tenant.Config) { c.ClientID, c.ClientSecret = "id", "secret" }, "either Token or ClientID"},
		{"half the client credentials", func(c *tenant.Config) { c.Token, c.ClientID = "", "id" }, "ClientID and ClientSecret"},
		{"no credentials", func(c *tenant.Config) { c.Token = "" }, "Domain needs Token, or ClientID"},
		{"no URL", func(c *tenant.Config) { c.IngestURL = "" }, "IngestURL is required"},
		{"plain http", func(c *tenant.Config) { c.IngestURL = "http://signupsync.example.com" }, "IngestURL"},
		{"credentials in the URL", func(c *tenant.Config) { c.IngestURL = "https://u:p@signupsync.example.com" }, "IngestURL"},
		{"the Action's path", func(c *tenant.Config) { c.IngestURL = "https://s.example.com/v1/hooks/auth0-action" }, "IngestURL"},
		{"a prefix with capitals", func(c *tenant.Config) { c.Prefix = "SignupSync" }, "Prefix"},
		{"a prefix ending in -", func(c *tenant.Config) { c.Prefix = "signupsync-" }, "Prefix"},
		{"no part", func(c *tenant.Config) { c.Actions, c.EventStream, c.LogStream = false, false, false }, "nothing to do"},
		{"secret without whsec_", func(c *tenant.Config) { c.ActionSecret = "c2VjcmV0c2VjcmV0c2VjcmV0" }, "ActionSecret"},
		{"short secret", func(c *tenant.Config) { c.ActionSecret = "whsec_c2hvcnQ=" }, "ActionSecret: key is 5 bytes"},
		{"token with a comma", func(c *tenant.Config) { c.EventStreamToken = "a,b" }, "EventStreamToken"},
		{"token with a space", func(c *tenant.Config) { c.LogStreamToken = "Bearer x" }, "LogStreamToken"},
		{"budget out of range", func(c *tenant.Config) { c.ActionBudget = 20 * time.Second }, "ActionBudget"},
		{"negative timeout", func(c *tenant.Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "--"):
				t.Errorf("error %q names a flag, not the field", err)
			}
		})
	}
}

func TestNewRefusesAnInvalidConfig(t *testing.T) {
	if _, err := tenant.New(t.Context(), tenant.Config{}, tenant.Deps{}); err == nil {
		t.Fatal("New took an empty config")
	}
}

func TestClientCredentialsAreExchangedForAToken(t *testing.T) {
	srv := auth0fake.New(t)
	inst, _ := newInstaller(t, srv, func(c *tenant.Config) { c.Token, c.ClientID, c.ClientSecret = "", srv.ClientID(), srv.ClientSecret() })
	if _, err := inst.Plan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if srv.Requests()[auth0fake.RouteToken] != 1 {
		t.Errorf("token requests: %d", srv.Requests()[auth0fake.RouteToken])
	}
}
