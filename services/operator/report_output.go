package operator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
)

// reportCSVs are the files [Report.WriteCSVs] writes, in the order it
// writes them.
var reportCSVs = []struct {
	name  string
	write func(io.Writer, Report) error
}{
	{"need-password-export.csv", func(w io.Writer, r Report) error { return WriteCSV(w, r.NeedPasswordExport) }},
	{"conflicts.csv", func(w io.Writer, r Report) error { return WriteCSV(w, r.Conflicts) }},
	{"missing.csv", func(w io.Writer, r Report) error { return WriteCSV(w, r.Missing) }},
	{"offenders.csv", func(w io.Writer, r Report) error { return WriteOffendersCSV(w, r.Offenders) }},
	{"lifecycle-conflicts.csv", func(w io.Writer, r Report) error { return WriteCSV(w, r.LifecycleConflicts) }},
	{"deleted-in-auth0.csv", func(w io.Writer, r Report) error { return WriteCSV(w, r.DeletedInAuth0) }},
}

// WriteCSVs writes the report's follow-up lists into dir, creating it if
// needed: need-password-export.csv, conflicts.csv, missing.csv,
// lifecycle-conflicts.csv and deleted-in-auth0.csv in the [WriteCSV]
// columns, offenders.csv in the [WriteOffendersCSV] columns. Every file is
// written, with its header line, even when its list is empty; existing
// files are replaced. It returns the first error creating dir or a file, or
// writing or closing a file (naming the file); files written before it
// stay.
func (r Report) WriteCSVs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range reportCSVs {
		f, err := os.Create(filepath.Join(dir, c.name))
		if err != nil {
			return err
		}
		werr := c.write(f, r)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("write %s: %w", c.name, err)
		}
	}
	return nil
}

// WriteJSON writes the report to w as indented JSON followed by a newline.
// It returns the error of writing to w.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// maxTextRows is how many rows of a list [Report.WriteText] prints before
// pointing to the complete outputs.
const maxTextRows = 20

// WriteText writes the report to w for a person: the counts, then up to 20
// rows of each problem list (lifecycle conflicts, users deleted in Auth0
// when the Auth0 check ran, and, when verified, the verification pass's
// offenders); a longer list ends with a line pointing to the report
// command's --out and --format json. verified says whether the
// verification pass ran; without it the text says it was skipped. Rows
// name users by their Auth0 user id and Firebase uid only, never by email.
// It returns the first error writing to w, after which it writes nothing
// more.
func (r Report) WriteText(w io.Writer, verified bool) error {
	ew := &stickyWriter{w: w}
	fmt.Fprintf(ew, "cutover report (%s): %d users", r.Source, r.Users)
	if r.Malformed > 0 {
		fmt.Fprintf(ew, ", %d malformed lines", r.Malformed)
	}
	fmt.Fprintln(ew)
	keys := make([]string, 0, len(r.Outcomes))
	for k := range r.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.Outcomes[k])
	}
	_ = tw.Flush()
	fmt.Fprintf(ew, "need the password-hash export: %d\nconflicts for manual review: %d\n", len(r.NeedPasswordExport), len(r.Conflicts))
	fmt.Fprintf(ew, "database users: %d imported with their password hash, %d migrated on login, %d still waiting, %d other\n",
		r.Passwords.ImportedWithHash, r.Passwords.MigratedOnLogin, r.Passwords.Waiting, r.Passwords.Other)
	lc := r.Lifecycle
	fmt.Fprintf(ew, "lifecycle: %d deleted in auth0 (%d firebase accounts deleted, %d before import, %d not created by signupsync), %d updated, %d pending conflicts, %d pending deletions\n",
		lc.Deleted, lc.FirebaseDeleted, lc.DeletedBeforeImport, lc.DeletedNotOurs, lc.Updated, lc.PendingConflicts, lc.PendingDeletions)
	writeRows(ew, r.LifecycleConflicts, func(row Row) {
		fmt.Fprintf(ew, "  %s: %s (firebase uid %s)\n", row.Reason, row.Auth0UserID, row.FirebaseUID)
	})
	if r.DeletedInAuth0 != nil {
		fmt.Fprintf(ew, "auth0 check: %d imported users no longer exist in auth0\n", len(r.DeletedInAuth0))
		writeRows(ew, r.DeletedInAuth0, func(row Row) {
			fmt.Fprintf(ew, "  %s: %s (firebase uid %s)\n", row.Problem, row.Auth0UserID, row.FirebaseUID)
		})
	}
	if !verified {
		fmt.Fprintln(ew, "firebase verification: skipped")
		return ew.err
	}
	fmt.Fprintf(ew, "firebase verification: %d as expected, %d missing, %d problems\n", r.Verified, len(r.Missing), len(r.Offenders))
	writeRows(ew, r.Offenders, func(row Row) {
		fmt.Fprintf(ew, "  %s: %s (outcome %s, expected uid %s", row.Problem, row.Auth0UserID, row.Outcome, row.FirebaseUID)
		if row.OtherUID != "" {
			fmt.Fprintf(ew, ", other uid %s", row.OtherUID)
		}
		fmt.Fprintln(ew, ")")
	})
	return ew.err
}

// writeRows writes up to maxTextRows rows with line, then how many more
// there are.
func writeRows(w io.Writer, rows []Row, line func(Row)) {
	for i, row := range rows {
		if i == maxTextRows {
			fmt.Fprintf(w, "  ... and %d more (use --out or --format json)\n", len(rows)-maxTextRows)
			return
		}
		line(row)
	}
}

// stickyWriter writes to w until a write fails, then keeps that error and
// writes nothing more, so a run of Fprintf calls needs one check at the end.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}
