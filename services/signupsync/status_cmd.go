package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/signupsync/signupsync/events"
)

// runStatus prints the ledger entry of an Auth0 user: what happened to the
// signup, the Firebase uid, the sources it came from, its trace id and its
// lifecycle state (deletion, profile changes applied until cutover).
// Exit status 3 means the ledger has no entry (not seen, or still pending).
func runStatus(ctx context.Context, args []string, e env) error {
	f := newFlags("status", e.getenv, e.stderr)
	com := addCommon(f)
	asJSON := f.Bool("json", "", false, "print the entry as JSON")
	if err := f.parse(args); err != nil {
		return usageError{err}
	}
	rest := f.fs.Args()
	if len(rest) > 1 {
		// Allow flags after the id: status google-oauth2|1 --json
		if err := f.fs.Parse(rest[1:]); err != nil {
			return usageError{err}
		}
		rest = append(rest[:1], f.fs.Args()...)
	}
	if len(rest) != 1 || strings.TrimSpace(rest[0]) == "" {
		return usageError{errors.New("usage: signupsync status [--json] <auth0-user-id>")}
	}
	userID := rest[0]
	log, err := com.logger(e)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(*com.natsURL, *com.natsCreds, "signupsync-status", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return fmt.Errorf("ledger bucket at %s: %w", redactURLs(*com.natsURL), err)
	}
	v, err := kv.Get(ctx, events.LedgerKey(userID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return exitError{code: 3, err: fmt.Errorf("%s: no ledger entry (never seen, or not settled yet)", userID)}
	}
	if err != nil {
		return fmt.Errorf("ledger get: %w", err)
	}
	le, err := events.UnmarshalLedger(v.Value())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(le)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	srcs := make([]string, len(le.Sources))
	for i, s := range le.Sources {
		srcs[i] = string(s)
	}
	rows := [][2]string{
		{"auth0 user", le.Auth0UserID}, {"outcome", string(le.Outcome)}, {"reason", le.Reason}, {"detail", le.Detail},
		{"firebase uid", le.FirebaseUID}, {"sources", strings.Join(srcs, ", ")}, {"deliveries", fmt.Sprint(le.Deliveries)},
		{"first seen", events.FormatTime(le.FirstSeen)}, {"last seen", events.FormatTime(le.LastSeen)}, {"trace id", le.TraceID},
	}
	if lc := le.Lifecycle; lc != nil {
		// What signupsync did with the user's later changes in Auth0
		// (deletions, profile updates), times only.
		at := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return events.FormatTime(t)
		}
		rows = append(rows, [][2]string{
			{"lifecycle", lc.Result}, {"lifecycle detail", lc.Detail}, {"outcome before deletion", string(lc.OutcomeBefore)},
			{"deleted in auth0", at(lc.DeletedAt)}, {"firebase account deleted", at(lc.FirebaseDeletedAt)},
			{"orphan firebase uid", lc.OrphanUID}, {"profile updated_at applied", at(lc.UpdatedAt)},
			{"firebase profile synced", at(lc.SyncedAt)}, {"lifecycle events", fmt.Sprint(lc.Events)},
		}...)
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
		}
	}
	return tw.Flush()
}
