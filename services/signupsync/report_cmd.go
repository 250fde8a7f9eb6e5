package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
	"github.com/signupsync/signupsync/internal/rolerun"
	"github.com/signupsync/signupsync/services/operator"
)

// reportCmd is `signupsync report`: the cutover report. It exits 4 when
// the verification pass finds offenders (users missing from Firebase,
// without their provider identity, or whose email or provider identity
// another account holds), or --check-auth0 finds imported users Auth0 no
// longer has, so it can gate cutover.
type reportCmd struct {
	File          string `name:"file" help:"Auth0 export to report on (default: every user in the ledger)."`
	Out           string `name:"out" help:"Also write need-password-export.csv, conflicts.csv, missing.csv, offenders.csv, lifecycle-conflicts.csv and deleted-in-auth0.csv into this directory."`
	Verify        bool   `name:"verify" default:"true" negatable:"" help:"Look every eligible user up in Firebase by uid, provider identity and email (100 identifiers a call)."`
	CheckAuth0    bool   `name:"check-auth0" envvar:"SIGNUPSYNC_REPORT_CHECK_AUTH0" cfg:"report.CheckAuth0" help:"Ask the Management API for every user the ledger holds as imported and list those Auth0 no longer has (deletions no webhook reported; one request per user)."`
	Auth0Rate     int    `name:"auth0-rate" aliases:"auth0-rps" envvar:"SIGNUPSYNC_REPORT_AUTH0_RPS" default:"${report_auth0_rate}" cfg:"report.Auth0Rate" help:"Management API requests per second of --check-auth0, 0 = unlimited."`
	outputFlags   `embed:""`
	tenantFlag    `embed:""`
	uidPolicyFlag `embed:"" group:"firebase"`
	firebaseFlags `embed:"" group:"firebase"`
	auth0Flags    `embed:"" group:"auth0"`
	natsFlags     `embed:"" group:"nats"`
	logFlags      `embed:"" group:"process"`
}

func reportVars() kong.Vars {
	return kong.Vars{"report_auth0_rate": strconv.Itoa(int(operator.DefaultAuth0CheckConfig().RPS))}
}

func (c *reportCmd) Run(ctx context.Context, e env) error {
	var errs []error
	var a0 auth0api.Config
	if c.CheckAuth0 {
		var err error
		a0, err = c.required()
		errs = append(errs, e.fields.explain(err, "auth0"))
		if c.Auth0Rate < 0 {
			errs = append(errs, e.fields.explain(errors.New("report: Auth0Rate must not be negative"), "report"))
		}
	}
	policy := events.UIDPolicy(c.UIDPolicy)
	if !policy.Valid() {
		errs = append(errs, e.fields.explain(fmt.Errorf("report: UIDPolicy %q: want auth0_id or hash", c.UIDPolicy), "report"))
	}
	if c.Verify {
		errs = append(errs, c.firebaseFlags.check(e))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	conn, err := c.connect("signupsync-report", log)
	if err != nil {
		return err
	}
	defer conn.NC.Close()
	kv, err := conn.JS.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return fmt.Errorf("ledger bucket at %s: %w", rolerun.RedactURLs(string(c.URL)), err)
	}
	var fb operator.Lookup
	if c.Verify {
		client, err := c.firebaseFlags.client(ctx, e, nil)
		if err != nil {
			return err
		}
		fb = client
	}
	rep, repErr := operator.BuildReport(ctx, operator.ReportConfig{File: c.File, Tenant: c.Tenant, UIDPolicy: policy, Verify: c.Verify}, kv, fb)
	if repErr != nil && !errors.Is(repErr, operator.ErrUnverified) {
		return repErr
	}
	if c.CheckAuth0 {
		api, err := auth0api.New(ctx, a0)
		if err != nil {
			return err
		}
		cc := operator.DefaultAuth0CheckConfig()
		cc.RPS = float64(c.Auth0Rate)
		var checkErr error
		rep.DeletedInAuth0, _, checkErr = operator.FindDeletedInAuth0(ctx, cc, kv, api)
		if checkErr != nil && !errors.Is(checkErr, operator.ErrDeletedInAuth0) {
			return checkErr
		}
		repErr = errors.Join(repErr, checkErr)
	}
	if c.Out != "" {
		if err := rep.WriteCSVs(c.Out); err != nil {
			return err
		}
	}
	var werr error
	if c.json() {
		werr = rep.WriteJSON(e.stdout)
	} else {
		werr = rep.WriteText(e.stdout, c.Verify)
	}
	if werr != nil {
		return werr
	}
	if repErr != nil {
		return exitError{code: 4, err: repErr}
	}
	return nil
}
