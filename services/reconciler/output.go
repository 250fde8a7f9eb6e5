package reconciler

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteText writes the one line of a round to w: [Result.String], marked
// when the round failed with err (its checkpoint did not move). It
// returns w's error.
func (r Result) WriteText(w io.Writer, err error) error {
	if err != nil {
		_, werr := fmt.Fprintf(w, "%s; FAILED, checkpoint not moved\n", r)
		return werr
	}
	_, werr := fmt.Fprintln(w, r)
	return werr
}

// WriteJSON writes a round to w as one line of JSON: the fields of the
// Result and its Counts, and "error" with err's text when the round
// failed. It returns the encoding's or w's error.
func (r Result) WriteJSON(w io.Writer, err error) error {
	v := struct {
		Result
		Error string `json:"error,omitempty"`
	}{Result: r}
	if err != nil {
		v.Error = err.Error()
	}
	b, merr := json.Marshal(v)
	if merr != nil {
		return fmt.Errorf("reconcile result: %w", merr)
	}
	_, werr := fmt.Fprintln(w, string(b))
	return werr
}
