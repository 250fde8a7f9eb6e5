package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/services/ingest"
	"github.com/signupsync/signupsync/services/operator"
)

const dlqUsage = `usage: signupsync dlq <list|show|replay|purge> [selection] [flags]

selection (criteria of different kinds must all match):
  --seq N[,N]        dead-letter stream sequences
  --msg-id ID[,ID]   original Nats-Msg-Id (the event id, su_...)
  --user ID[,ID]     Auth0 user ids
  --reason R[,R]     dead-letter reasons (malformed_event, firebase_rejected, max_deliveries, ...)
  --since T --until T  RFC 3339 times, or durations meaning "that long ago"
  --all              every dead letter (not combinable with other criteria)
list works without a selection (it lists everything); show, replay and purge
refuse to. replay and purge are dry runs unless --yes.`

// replayFreshNote tells the operator that a replayed dead letter's data is
// not what gets imported (the importer re-reads every signup carrying
// Signupsync-Replayed-From).
const replayFreshNote = "signups from this replay are re-read from Auth0 by the importer before import; users deleted since are skipped"

// dlqActions are the words dlq takes before its flags.
var dlqActions = []string{"list", "show", "replay", "purge"}

// runDLQ lists, shows, replays or purges dead letters.
func runDLQ(ctx context.Context, args []string, e env) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(e.stderr, dlqUsage)
		return usageError{errors.New("dlq needs an action: list, show, replay or purge")}
	}
	action := args[0]
	if !slices.Contains(dlqActions, action) {
		fmt.Fprintln(e.stderr, dlqUsage)
		return usageError{fmt.Errorf("dlq: unknown action %q", action)}
	}
	f := newFlags("dlq "+action, e.getenv, e.stderr)
	com := addCommon(f)
	seqs := f.List("seq", "", "", "dead-letter stream sequence(s)")
	msgIDs := f.List("msg-id", "", "", "original Nats-Msg-Id(s)")
	users := f.List("user", "", "", "Auth0 user id(s)")
	reasons := f.List("reason", "", "", "dead-letter reason(s)")
	since := f.String("since", "", "", "dead-lettered at or after (RFC 3339, or a duration ago)")
	until := f.String("until", "", "", "dead-lettered before (RFC 3339, or a duration ago)")
	all := f.Bool("all", "", false, "select every dead letter")
	yes := f.Bool("yes", "", false, "really replay or purge (default: dry run)")
	rateFlag := f.Int("rate", "SIGNUPSYNC_DLQ_RATE", 50, "replays or purges per second")
	asJSON := f.Bool("json", "", false, "print JSON")
	tenant := f.String("tenant", "SIGNUPSYNC_AUTH0_TENANT", "default", "Auth0 tenant name for replayed Log Streams entries that do not carry it")
	if err := f.parse(args[1:]); err != nil {
		return usageError{err}
	}
	if f.fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq %s: unexpected argument %q (selection is given with flags)", action, f.fs.Arg(0))}
	}
	now := time.Now()
	sel := operator.Selection{MsgIDs: msgIDs.items, Users: users.items, Reasons: reasons.items, All: *all}
	for _, s := range seqs.items {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageError{fmt.Errorf("--seq %q: not a sequence number", s)}
		}
		sel.Seqs = append(sel.Seqs, n)
	}
	var err error
	if sel.Since, err = parseWhen(*since, now); err != nil {
		return usageError{fmt.Errorf("--since: %w", err)}
	}
	if sel.Until, err = parseWhen(*until, now); err != nil {
		return usageError{fmt.Errorf("--until: %w", err)}
	}
	if action == "list" && sel.Empty() {
		sel.All = true
	}
	if err := sel.Validate(); err != nil {
		return usageError{err}
	}
	if *yes && (action == "list" || action == "show") {
		return usageError{fmt.Errorf("--yes means nothing to dlq %s", action)}
	}
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-dlq", log)
	if err != nil {
		return err
	}
	defer func() { _ = drainNATS(nc, *com.drainPeriod) }()
	dls, err := operator.Select(ctx, js, sel)
	if err != nil {
		return err
	}
	switch action {
	case "list":
		return printDeadLetters(e, dls, *asJSON, false)
	case "show":
		return printDeadLetters(e, dls, *asJSON, true)
	}
	if action == "replay" {
		// The note goes where it does not break --json's output.
		note := e.stdout
		if *asJSON {
			note = e.stderr
		}
		fmt.Fprintln(note, replayFreshNote)
	}
	if !*yes {
		fmt.Fprintf(e.stdout, "dry run: would %s %d dead letter(s); add --yes to do it\n", action, len(dls))
		return printDeadLetters(e, dls, *asJSON, false)
	}
	var res []operator.Result
	if action == "replay" {
		var entries *ingest.LogEntryDecoder
		if entries, err = ingest.NewLogEntryDecoder(*tenant); err != nil {
			return err
		}
		res, err = operator.Replay(ctx, js, dls, float64(*rateFlag), entries)
	} else {
		res, err = operator.Purge(ctx, js, dls, float64(*rateFlag))
	}
	verb := map[string]string{"replay": "replayed", "purge": "purged"}[action]
	for _, r := range res {
		if r.MsgID != "" {
			fmt.Fprintf(e.stdout, "%s dead letter %d as %s\n", verb, r.Seq, r.MsgID)
		} else {
			fmt.Fprintf(e.stdout, "%s dead letter %d\n", verb, r.Seq)
		}
	}
	fmt.Fprintf(e.stdout, "%s %d of %d selected dead letter(s)\n", verb, len(res), len(dls))
	return err
}

// parseWhen reads an RFC 3339 time or a duration meaning "that long ago".
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}

func printDeadLetters(e env, dls []operator.DeadLetter, asJSON, full bool) error {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if dls == nil {
			dls = []operator.DeadLetter{}
		}
		return enc.Encode(dls)
	}
	if full {
		for _, d := range dls {
			fmt.Fprintf(e.stdout, "dead letter %d (%s)\n", d.Seq, events.FormatTime(d.Time))
			for k, v := range d.Header {
				fmt.Fprintf(e.stdout, "  %s: %s\n", k, strings.Join(v, ", "))
			}
			fmt.Fprintf(e.stdout, "  data: %s\n\n", d.Data)
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tREASON\tAUTH0 USER\tDELIVERIES\tERROR")
	for _, d := range dls {
		errText := d.Error
		if len(errText) > 80 {
			errText = errText[:77] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Time.UTC().Format(time.RFC3339), d.Reason, d.UserID, d.Deliveries, errText)
	}
	return tw.Flush()
}
