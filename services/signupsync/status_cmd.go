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
	"github.com/signupsync/signupsync/internal/rolerun"
)

// statusCmd is `signupsync status`: the ledger entry of an Auth0 user,
// what happened to the signup, the Firebase uid, the sources it came from,
// its trace id and its lifecycle state (deletion, profile changes applied
// until cutover). Exit status 3 means the ledger has no entry (not seen, or
// still pending).
type statusCmd struct {
	UserID      string `arg:"" name:"auth0-user-id" help:"The Auth0 user_id, e.g. google-oauth2|123."`
	outputFlags `embed:""`
	natsFlags   `embed:"" group:"nats"`
	logFlags    `embed:"" group:"process"`
}

func (c *statusCmd) Run(ctx context.Context, e env) error {
	userID := c.UserID
	if strings.TrimSpace(userID) == "" {
		return usageError{errors.New("status: the auth0-user-id is empty")}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	conn, err := c.connect("signupsync-status", log)
	if err != nil {
		return err
	}
	defer conn.NC.Close()
	js := conn.JS
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketLedger)
	if err != nil {
		return fmt.Errorf("ledger bucket at %s: %w", rolerun.RedactURLs(string(c.URL)), err)
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
	if c.json() {
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
