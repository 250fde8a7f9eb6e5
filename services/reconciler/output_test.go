package reconciler_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/signupsync/signupsync/services/reconciler"
)

func TestWriteTextAndJSONPrintOneLinePerRound(t *testing.T) {
	sweep := reconciler.Result{From: base, Until: base.Add(time.Hour),
		Counts: reconciler.Counts{Listed: 3, Known: 1, Missing: 2, Published: 2, Requests: 1}}
	deliveries := reconciler.Result{Mode: reconciler.ModeDeliveries, StreamID: "est_1", From: base, Until: base.Add(time.Minute), DryRun: true,
		Counts: reconciler.Counts{Listed: 4, Missing: 2, Ignored: 1, Invalid: 1, Requests: 2, Retries: 1}}
	failure := errors.New("publish: nats: timeout")

	tests := []struct {
		name     string
		res      reconciler.Result
		err      error
		wantText string
		wantJSON string
	}{
		{name: "sweep", res: sweep,
			wantText: "reconcile [2025-01-01T00:00:00Z, 2025-01-01T01:00:00Z): listed 3, known 1, missing 2, published 2, duplicates 0, requests 1, retries 0\n",
			wantJSON: `{"from":"2025-01-01T00:00:00Z","until":"2025-01-01T01:00:00Z","listed":3,"known":1,"missing":2,"published":2,"duplicates":0,"dense_windows":0,"requests":1,"retries":0}` + "\n"},
		{name: "failed sweep", res: sweep, err: failure,
			wantText: "reconcile [2025-01-01T00:00:00Z, 2025-01-01T01:00:00Z): listed 3, known 1, missing 2, published 2, duplicates 0, requests 1, retries 0; FAILED, checkpoint not moved\n",
			wantJSON: `{"from":"2025-01-01T00:00:00Z","until":"2025-01-01T01:00:00Z","listed":3,"known":1,"missing":2,"published":2,"duplicates":0,"dense_windows":0,"requests":1,"retries":0,"error":"publish: nats: timeout"}` + "\n"},
		{name: "dry run of deliveries", res: deliveries,
			wantText: "reconcile deliveries of est_1 (dry run) [2025-01-01T00:00:00Z, 2025-01-01T00:01:00Z): listed 4, known 0, missing 2, published 0, duplicates 0, requests 2, retries 1, ignored 1, invalid 1\n",
			wantJSON: `{"mode":"deliveries","stream_id":"est_1","from":"2025-01-01T00:00:00Z","until":"2025-01-01T00:01:00Z","dry_run":true,"listed":4,"known":0,"missing":2,"published":0,"duplicates":0,"ignored":1,"invalid":1,"dense_windows":0,"requests":2,"retries":1}` + "\n"},
		{name: "up to date", res: reconciler.Result{From: base, Until: base, UpToDate: true},
			wantText: "reconcile: up to date (checkpoint 2025-01-01T00:00:00Z, window ends 2025-01-01T00:00:00Z)\n",
			wantJSON: `{"from":"2025-01-01T00:00:00Z","until":"2025-01-01T00:00:00Z","up_to_date":true,"listed":0,"known":0,"missing":0,"published":0,"duplicates":0,"dense_windows":0,"requests":0,"retries":0}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text, js bytes.Buffer
			if err := tt.res.WriteText(&text, tt.err); err != nil {
				t.Fatalf("WriteText: %v", err)
			}
			if err := tt.res.WriteJSON(&js, tt.err); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			if text.String() != tt.wantText {
				t.Errorf("WriteText wrote\n%q\nwant\n%q", text.String(), tt.wantText)
			}
			if js.String() != tt.wantJSON {
				t.Errorf("WriteJSON wrote\n%s\nwant\n%s", js.String(), tt.wantJSON)
			}
		})
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriteReturnsTheWritersError(t *testing.T) {
	broken := errors.New("stdout closed")
	res := reconciler.Result{From: base, Until: base.Add(time.Hour)}
	for name, write := range map[string]func(reconciler.Result) error{
		"text":        func(r reconciler.Result) error { return r.WriteText(failingWriter{broken}, nil) },
		"text failed": func(r reconciler.Result) error { return r.WriteText(failingWriter{broken}, errors.New("x")) },
		"json":        func(r reconciler.Result) error { return r.WriteJSON(failingWriter{broken}, nil) },
	} {
		if err := write(res); !errors.Is(err, broken) {
			t.Errorf("%s: error %v, want %v", name, err, broken)
		}
	}
}
