package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/services/ingest"
	"github.com/signupsync/signupsync/services/operator"
	"github.com/signupsync/signupsync/services/reconciler"
)

// dlqCmd is `signupsync dlq <action>`. show, replay and purge refuse to
// run without a selection; replay and purge are dry runs unless --yes.
type dlqCmd struct {
	List   dlqListCmd   `cmd:"" group:"subcommands" help:"List dead letters (every one without a selection)."`
	Show   dlqShowCmd   `cmd:"" group:"subcommands" help:"Show the selected dead letters with their headers and data."`
	Replay dlqReplayCmd `cmd:"" group:"subcommands" help:"Put the selected dead letters back into SIGNUPS (a dry run unless --yes)."`
	Purge  dlqPurgeCmd  `cmd:"" group:"subcommands" help:"Delete the selected dead letters (a dry run unless --yes)."`
}

// replayFreshNote tells the operator that a replayed dead letter's data is
// not what gets imported (the importer re-reads every signup carrying
// Signupsync-Replayed-From).
const replayFreshNote = "signups from this replay are re-read from Auth0 by the importer before import; users deleted since are skipped"

// dlqFlags are the flags of every dlq action.
type dlqFlags struct {
	Seq           list   `name:"seq" group:"selection" cfg:"selection.Seqs" help:"Dead-letter stream sequence(s), comma-separated."`
	MsgID         list   `name:"msg-id" group:"selection" cfg:"selection.MsgIDs" help:"Original Nats-Msg-Id(s) (the event id, su_...)."`
	User          list   `name:"user" group:"selection" cfg:"selection.Users" help:"Auth0 user id(s)."`
	Reason        list   `name:"reason" group:"selection" cfg:"selection.Reasons" help:"Dead-letter reason(s): malformed_event, firebase_rejected, max_deliveries, ..."`
	Since         string `name:"since" group:"selection" cfg:"selection.Since" help:"Dead-lettered at or after: an RFC 3339 time, a date (2006-01-02) or a duration before now (2h)."`
	Until         string `name:"until" group:"selection" cfg:"selection.Until" help:"Dead-lettered before: same forms as --since."`
	All           bool   `name:"all" group:"selection" cfg:"selection.All" help:"Every dead letter (not combinable with other criteria)."`
	outputFlags   `embed:""`
	natsFlags     `embed:"" group:"nats"`
	logFlags      `embed:"" group:"process"`
	shutdownFlags `embed:"" group:"process"`
}

// dlqChangeFlags are the flags of the actions that change the stream.
type dlqChangeFlags struct {
	Yes  bool `name:"yes" help:"Really do it (default: a dry run)."`
	Rate int  `name:"rate" envvar:"SIGNUPSYNC_DLQ_RATE" default:"50" help:"Dead letters replayed or purged per second, 0 = unlimited."`
}

type dlqListCmd struct{ dlqFlags }

type dlqShowCmd struct{ dlqFlags }

type dlqReplayCmd struct {
	dlqFlags
	dlqChangeFlags
	tenantFlag `embed:""`
}

type dlqPurgeCmd struct {
	dlqFlags
	dlqChangeFlags
}

func (c *dlqListCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, "list", func(_ context.Context, _ jetstream.JetStream, dls []operator.DeadLetter) error {
		return operator.WriteDeadLetters(e.stdout, dls, c.deadLetterFormat(operator.DeadLetterTable))
	})
}

func (c *dlqShowCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, "show", func(_ context.Context, _ jetstream.JetStream, dls []operator.DeadLetter) error {
		return operator.WriteDeadLetters(e.stdout, dls, c.deadLetterFormat(operator.DeadLetterDetail))
	})
}

func (c *dlqReplayCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, "replay", func(ctx context.Context, js jetstream.JetStream, dls []operator.DeadLetter) error {
		// The note goes where it does not break --format json.
		note := e.stdout
		if c.json() {
			note = e.stderr
		}
		fmt.Fprintln(note, replayFreshNote)
		return c.change(e, "replay", dls, c.deadLetterFormat(operator.DeadLetterTable), func() ([]operator.Result, error) {
			entries, err := ingest.NewLogEntryDecoder(c.Tenant)
			if err != nil {
				return nil, err
			}
			return operator.Replay(ctx, js, dls, float64(c.Rate), entries)
		})
	})
}

func (c *dlqPurgeCmd) Run(ctx context.Context, e env) error {
	return c.run(ctx, e, "purge", func(ctx context.Context, js jetstream.JetStream, dls []operator.DeadLetter) error {
		return c.change(e, "purge", dls, c.deadLetterFormat(operator.DeadLetterTable), func() ([]operator.Result, error) {
			return operator.Purge(ctx, js, dls, float64(c.Rate))
		})
	})
}

// run selects the dead letters and hands them to act.
func (c *dlqFlags) run(ctx context.Context, e env, action string, act func(context.Context, jetstream.JetStream, []operator.DeadLetter) error) (err error) {
	now := time.Now()
	sel := operator.Selection{MsgIDs: c.MsgID, Users: c.User, Reasons: c.Reason, All: c.All}
	for _, s := range c.Seq {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return e.usage(fmt.Errorf("dlq: Seqs %q: not a sequence number", s), "selection")
		}
		sel.Seqs = append(sel.Seqs, n)
	}
	var errs []error
	when := func(field, s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		t, err := reconciler.ParseTime(s, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("dlq: %s: %w", field, err))
		}
		return t
	}
	sel.Since, sel.Until = when("Since", c.Since), when("Until", c.Until)
	if action == "list" && sel.Empty() {
		sel.All = true
	}
	if err := errors.Join(append(errs, sel.Validate())...); err != nil {
		return e.usage(err, "selection")
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	conn, err := c.connect("signupsync-dlq", log)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
		defer cancel()
		err = errors.Join(err, conn.Drain(dctx))
	}()
	dls, err := operator.Select(ctx, conn.JS, sel)
	if err != nil {
		return err
	}
	return act(ctx, conn.JS, dls)
}

// deadLetterFormat is --format json, or text otherwise.
func (c *dlqFlags) deadLetterFormat(text operator.DeadLetterFormat) operator.DeadLetterFormat {
	if c.json() {
		return operator.DeadLetterJSON
	}
	return text
}

// change replays or purges dls with do, or says what it would do without
// --yes (listing dls in format), and reports what it did.
func (c *dlqChangeFlags) change(e env, action string, dls []operator.DeadLetter, format operator.DeadLetterFormat, do func() ([]operator.Result, error)) error {
	if !c.Yes {
		fmt.Fprintf(e.stdout, "dry run: would %s %d dead letter(s); add --yes to do it\n", action, len(dls))
		return operator.WriteDeadLetters(e.stdout, dls, format)
	}
	res, err := do()
	verb := map[string]string{"replay": "replayed", "purge": "purged"}[action]
	for _, r := range res {
		if r.MsgID != "" {
			fmt.Fprintf(e.stdout, "%s dead letter %d as %s\n", verb, r.Seq, r.MsgID)
		} else {
			fmt.Fprintf(e.stdout, "%s dead letter %d\n", verb, r.Seq)
		}
	}
	fmt.Fprintf(e.stdout, "%s %d of %d selected dead letter(s)\n", verb, len(res), len(dls))
	return e.fields.explain(err, "selection")
}
