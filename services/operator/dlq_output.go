package operator

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signupsync/signupsync/events"
)

// DeadLetterFormat is how [WriteDeadLetters] renders dead letters. The zero
// value is [DeadLetterTable].
type DeadLetterFormat int

const (
	// DeadLetterTable is a table with a line per dead letter: sequence,
	// time, reason, Auth0 user id, deliveries and the error (cut to 80
	// characters).
	DeadLetterTable DeadLetterFormat = iota
	// DeadLetterDetail is every dead letter with all its headers (sorted
	// by name) and its data.
	DeadLetterDetail
	// DeadLetterJSON is an indented JSON array of [DeadLetter] (empty, not
	// null, when there are none).
	DeadLetterJSON
)

// maxErrorText is how much of a dead letter's error the table shows.
const maxErrorText = 80

// WriteDeadLetters writes dls to w in format (a value it does not know as
// [DeadLetterTable]). The table names users by their Auth0 user id only;
// the detail and JSON formats also hold each dead letter's headers and data
// as they are (an event body, which can hold the user's email), for an
// operator deciding on a replay. It returns the first error writing to w.
func WriteDeadLetters(w io.Writer, dls []DeadLetter, format DeadLetterFormat) error {
	switch format {
	case DeadLetterJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if dls == nil {
			dls = []DeadLetter{}
		}
		return enc.Encode(dls)
	case DeadLetterDetail:
		ew := &stickyWriter{w: w}
		for _, d := range dls {
			fmt.Fprintf(ew, "dead letter %d (%s)\n", d.Seq, events.FormatTime(d.Time))
			keys := make([]string, 0, len(d.Header))
			for k := range d.Header {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(ew, "  %s: %s\n", k, strings.Join(d.Header[k], ", "))
			}
			fmt.Fprintf(ew, "  data: %s\n\n", d.Data)
		}
		return ew.err
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tREASON\tAUTH0 USER\tDELIVERIES\tERROR")
		for _, d := range dls {
			errText := d.Error
			if len(errText) > maxErrorText {
				errText = errText[:maxErrorText-3] + "..."
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Time.UTC().Format(time.RFC3339), d.Reason, d.UserID, d.Deliveries, errText)
		}
		return tw.Flush()
	}
}
