package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/internal/telemetry"
	"github.com/signupsync/signupsync/services/exchange"
)

// exchangeFlags are the session exchange's settings (exchange and dev).
type exchangeFlags struct {
	Addr                string        `name:"exchange-addr" envvar:"SIGNUPSYNC_EXCHANGE_ADDR" default:"${exchange_addr}" cfg:"exchange.Addr" help:"Listen address of the session exchange (POST ${path_exchange})."`
	Issuer              string        `name:"auth0-issuer" envvar:"SIGNUPSYNC_AUTH0_ISSUER" cfg:"exchange.Issuer" help:"Auth0 token issuer exactly as in iss, e.g. https://tenant.auth0.com/ (its /.well-known/jwks.json has the keys). In dev, the exchange runs when it is set."`
	Audience            string        `name:"auth0-audience" envvar:"SIGNUPSYNC_AUTH0_AUDIENCE" cfg:"exchange.Audience" help:"Audience the Auth0 tokens must carry (the API identifier)."`
	MaxTokenAge         time.Duration `name:"max-token-age" envvar:"SIGNUPSYNC_MAX_TOKEN_AGE" default:"${max_token_age}" cfg:"exchange.MaxTokenAge" help:"Oldest accepted sign-in: now minus auth_time, or iat when absent."`
	ClockSkew           time.Duration `name:"clock-skew" envvar:"SIGNUPSYNC_CLOCK_SKEW" default:"${clock_skew}" cfg:"exchange.ClockSkew" help:"Clock skew allowed on exp, nbf, iat and the token age."`
	JWKSRefreshInterval time.Duration `name:"jwks-refresh-interval" envvar:"SIGNUPSYNC_JWKS_REFRESH_INTERVAL" default:"${jwks_refresh_interval}" cfg:"exchange.JWKSRefreshInterval" help:"Least time between JWKS fetches caused by an unknown kid."`
	JWKSMaxAge          time.Duration `name:"jwks-max-age" envvar:"SIGNUPSYNC_JWKS_MAX_AGE" default:"${jwks_max_age}" cfg:"exchange.JWKSMaxAge" help:"How long fetched signing keys are used before they are fetched again."`
	ImportWait          time.Duration `name:"exchange-import-wait" envvar:"SIGNUPSYNC_EXCHANGE_IMPORT_WAIT" default:"${exchange_import_wait}" cfg:"exchange.ImportWait" help:"How long an exchange waits for the importer to import a person on the spot before 503."`
	SubjectRate         int           `name:"exchange-subject-rate" envvar:"SIGNUPSYNC_EXCHANGE_SUBJECT_RATE" default:"${exchange_subject_rate}" cfg:"exchange.SubjectRate" help:"Exchanges per minute per Auth0 user."`
	SubjectBurst        int           `name:"exchange-subject-burst" envvar:"SIGNUPSYNC_EXCHANGE_SUBJECT_BURST" default:"${exchange_subject_burst}" cfg:"exchange.SubjectBurst" help:"Burst of exchanges per Auth0 user."`
	IPRate              int           `name:"exchange-ip-rate" envvar:"SIGNUPSYNC_EXCHANGE_IP_RATE" default:"${exchange_ip_rate}" cfg:"exchange.IPRate" help:"Requests per minute per client address (IPv6: per /64)."`
	IPBurst             int           `name:"exchange-ip-burst" envvar:"SIGNUPSYNC_EXCHANGE_IP_BURST" default:"${exchange_ip_burst}" cfg:"exchange.IPBurst" help:"Burst of requests per client address."`
	ClientIPHeader      string        `name:"exchange-client-ip-header" envvar:"SIGNUPSYNC_EXCHANGE_CLIENT_IP_HEADER" help:"Header a trusted proxy sets to the client address (e.g. X-Forwarded-For; last value used); empty: the connection's address."`
	DeleteMerged        bool          `name:"delete-merged-anonymous" envvar:"SIGNUPSYNC_DELETE_MERGED_ANONYMOUS" cfg:"exchange.Merge.DeleteAnonymous" help:"Consume the app's merge acknowledgements (accounts.v1.merged.>) and delete each merged anonymous Firebase account that is still anonymous."`
}

// passwordFlags are the exchange's password fallback.
type passwordFlags struct {
	Enabled      bool   `name:"password-fallback" envvar:"SIGNUPSYNC_PASSWORD_FALLBACK" cfg:"exchange.Password.Enabled" help:"Serve POST ${path_password} (migration on next login: email and password checked with Auth0, Firebase account created with them); off answers 404."`
	Connection   string `name:"password-connection" envvar:"SIGNUPSYNC_PASSWORD_CONNECTION" cfg:"exchange.Password.Connection" help:"Auth0 database connection (realm) the password fallback checks passwords against."`
	ClientID     string `name:"password-client-id" envvar:"SIGNUPSYNC_PASSWORD_CLIENT_ID" cfg:"exchange.Password.ClientID" help:"Client id of the confidential Auth0 application with the Password grant and Trust Token Endpoint IP Header enabled."`
	ClientSecret secret `name:"password-client-secret" envvar:"SIGNUPSYNC_PASSWORD_CLIENT_SECRET" cfg:"exchange.Password.ClientSecret" help:"Client secret of that application."`
	EmailRate    int    `name:"password-email-rate" envvar:"SIGNUPSYNC_PASSWORD_EMAIL_RATE" default:"${password_email_rate}" cfg:"exchange.Password.EmailRate" help:"Password fallback attempts per minute per email."`
	EmailBurst   int    `name:"password-email-burst" envvar:"SIGNUPSYNC_PASSWORD_EMAIL_BURST" default:"${password_email_burst}" cfg:"exchange.Password.EmailBurst" help:"Burst of password fallback attempts per email."`
	IPRate       int    `name:"password-ip-rate" envvar:"SIGNUPSYNC_PASSWORD_IP_RATE" default:"${password_ip_rate}" cfg:"exchange.Password.IPRate" help:"Password fallback requests per minute per client address (IPv6: per /64)."`
	IPBurst      int    `name:"password-ip-burst" envvar:"SIGNUPSYNC_PASSWORD_IP_BURST" default:"${password_ip_burst}" cfg:"exchange.Password.IPBurst" help:"Burst of password fallback requests per client address."`
}

func exchangeVars() kong.Vars {
	d := exchange.DefaultConfig()
	n := func(f float64) string { return strconv.Itoa(int(f)) }
	return kong.Vars{
		"exchange_addr": d.Addr, "path_exchange": exchange.PathExchange, "path_password": exchange.PathPassword, "max_token_age": d.MaxTokenAge.String(), "clock_skew": d.ClockSkew.String(),
		"jwks_refresh_interval": d.JWKSRefreshInterval.String(), "jwks_max_age": d.JWKSMaxAge.String(), "exchange_import_wait": d.ImportWait.String(),
		"exchange_subject_rate": n(d.SubjectRate), "exchange_subject_burst": strconv.Itoa(d.SubjectBurst),
		"exchange_ip_rate": n(d.IPRate), "exchange_ip_burst": strconv.Itoa(d.IPBurst),
		"password_email_rate": n(d.Password.EmailRate), "password_email_burst": strconv.Itoa(d.Password.EmailBurst),
		"password_ip_rate": n(d.Password.IPRate), "password_ip_burst": strconv.Itoa(d.Password.IPBurst),
	}
}

// config is the exchange Config of these flags; the caller checks it.
func (f exchangeFlags) config(p passwordFlags, tenant, uid, project string, a0 auth0api.Config, shutdown time.Duration) exchange.Config {
	c := exchange.DefaultConfig()
	c.Addr, c.Issuer, c.Audience = f.Addr, f.Issuer, f.Audience
	c.MaxTokenAge, c.ClockSkew, c.JWKSRefreshInterval, c.JWKSMaxAge, c.ImportWait = f.MaxTokenAge, f.ClockSkew, f.JWKSRefreshInterval, f.JWKSMaxAge, f.ImportWait
	c.SubjectRate, c.SubjectBurst, c.IPRate, c.IPBurst = float64(f.SubjectRate), f.SubjectBurst, float64(f.IPRate), f.IPBurst
	c.ClientIPHeader, c.Merge.DeleteAnonymous, c.Merge.Project = f.ClientIPHeader, f.DeleteMerged, project
	c.Password.Enabled, c.Password.Connection, c.Password.ClientID, c.Password.ClientSecret = p.Enabled, p.Connection, p.ClientID, string(p.ClientSecret)
	c.Password.EmailRate, c.Password.EmailBurst, c.Password.IPRate, c.Password.IPBurst = float64(p.EmailRate), p.EmailBurst, float64(p.IPRate), p.IPBurst
	c.Tenant, c.UIDPolicy, c.Management, c.ShutdownTimeout = tenant, events.UIDPolicy(uid), a0, shutdown
	return c
}

// exchangeCmd is `signupsync exchange`. It faces the internet, so its NATS
// user may not create streams: it waits for the ledger bucket the importer
// creates, then listens.
type exchangeCmd struct {
	exchangeFlags `embed:"" group:"exchange"`
	tenantFlag    `embed:"" group:"exchange"`
	uidPolicyFlag `embed:"" group:"exchange"`
	passwordFlags `embed:"" group:"password"`
	firebaseFlags `embed:"" group:"firebase"`
	auth0Flags    `embed:"" group:"auth0"`
	roleFlags     `embed:"" set:"metrics_addr=127.0.0.1:9465"`
}

func (c *exchangeCmd) Run(ctx context.Context, e env) error {
	cfg := c.exchangeFlags.config(c.passwordFlags, c.Tenant, c.UIDPolicy, c.Project, c.auth0Flags.config(), c.ShutdownTimeout)
	if err := errors.Join(e.fields.explain(cfg.Validate(), "exchange", "auth0"), c.firebaseFlags.check(e)); err != nil {
		return usageError{err}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	// Publishing while disconnected must fail at once (503), not sit in the
	// reconnect buffer.
	r := c.role(e, "exchange", log, rolerun.Connection{Name: "signupsync-exchange",
		Options: []nats.Option{nats.ReconnectBufSize(-1), nats.CustomInboxPrefix(exchangeInboxPrefix)}})
	r.Prepare = rolerun.AwaitBucket(events.BucketLedger)
	r.Start = func(ctx context.Context, env rolerun.Env) (rolerun.Running, error) {
		fb, err := c.firebaseFlags.client(ctx, e, log)
		if err != nil {
			return rolerun.Running{}, err
		}
		u, svc, err := exchangeUnit(ctx, cfg, env.JS[0], fb, env)
		if err != nil {
			return rolerun.Running{}, err
		}
		return rolerun.Running{Units: []rolerun.Unit{u}, Ready: svc.Ready}, nil
	}
	return runRole(ctx, e, r, "exchange", "auth0")
}

// exchangeUnit builds the session exchange on js, which must hold the
// ledger bucket, and opens its listener. cfg must be valid; fb signs the
// custom tokens.
func exchangeUnit(ctx context.Context, cfg exchange.Config, js jetstream.JetStream, fb *auth.Client, env rolerun.Env) (rolerun.Unit, *exchange.Service, error) {
	users, err := auth0api.New(ctx, cfg.Management)
	if err != nil {
		return rolerun.Unit{}, nil, err
	}
	metrics, err := exchange.NewMetrics(env.Registry)
	if err != nil {
		return rolerun.Unit{}, nil, err
	}
	svc, err := exchange.New(ctx, cfg, exchange.Deps{
		JetStream:  js,
		Firebase:   fb,
		Users:      users,
		Logger:     env.Logger.With("role", "exchange"),
		Metrics:    metrics,
		Ready:      rolerun.StreamReady(js),
		Tracer:     env.Tracer,
		Propagator: telemetry.Propagator(),
	})
	if err != nil {
		return rolerun.Unit{}, nil, err
	}
	ln, err := exchange.Listen(ctx, cfg.Addr)
	if err != nil {
		return rolerun.Unit{}, nil, fmt.Errorf("exchange: %w", err)
	}
	return rolerun.Unit{Name: "exchange", Run: func(ctx context.Context) error { return svc.Serve(ctx, ln) }}, svc, nil
}
