package reconciler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/signupsync/signupsync/services/reconciler"
)

func TestConfigValidate(t *testing.T) {
	ok := reconciler.DefaultConfig()
	ok.Since = base
	tests := []struct {
		name string
		edit func(*reconciler.Config)
		// want is a fragment of the message, naming the field; "" means valid.
		want string
	}{
		{name: "defaults with --since", edit: func(*reconciler.Config) {}},
		{name: "service", edit: func(c *reconciler.Config) { c.Every = 5 * time.Minute }},
		{name: "fixed window", edit: func(c *reconciler.Config) { c.Until = base.Add(time.Hour) }},
		{name: "no since", edit: func(c *reconciler.Config) { c.Since = time.Time{} }, want: "Since is required"},
		{name: "until before since", edit: func(c *reconciler.Config) { c.Until = base.Add(-time.Hour) }, want: "Until must be after Since"},
		{name: "until with every", edit: func(c *reconciler.Config) { c.Until, c.Every = base.Add(time.Hour), time.Minute }, want: "contradict"},
		{name: "every under a second", edit: func(c *reconciler.Config) { c.Every = time.Millisecond }, want: "Every 1ms"},
		{name: "negative rps", edit: func(c *reconciler.Config) { c.RPS = -1 }, want: "RPS must not be negative"},
		{name: "negative settle lag", edit: func(c *reconciler.Config) { c.SettleLag = -time.Second }, want: "SettleLag"},
		{name: "page over 100", edit: func(c *reconciler.Config) { c.PageSize = 101 }, want: "page size"},
		{name: "negative lookback", edit: func(c *reconciler.Config) { c.Lookback = -time.Minute }, want: "Lookback must not be negative"},
		{name: "no lookback", edit: func(c *reconciler.Config) { c.Lookback = 0 }},
		{name: "deliveries", edit: func(c *reconciler.Config) {
			c.Mode, c.StreamID = reconciler.ModeDeliveries, "est_aD5AUDqZbHFcMoEx2LxAk9"
		}},
		{name: "deliveries without a stream", edit: func(c *reconciler.Config) { c.Mode = reconciler.ModeDeliveries }, want: "StreamID"},
		{name: "deliveries with a bad stream id", edit: func(c *reconciler.Config) { c.Mode, c.StreamID = reconciler.ModeDeliveries, "est.x>" }, want: "StreamID"},
		{name: "a stream id for a sweep", edit: func(c *reconciler.Config) { c.StreamID = "est_x" }, want: "ModeDeliveries only"},
		{name: "unknown mode", edit: func(c *reconciler.Config) { c.Mode = "nap" }, want: "mode"},
		{name: "no attempts", edit: func(c *reconciler.Config) { c.MaxAttempts = 0 }, want: "max attempts"},
		{name: "no concurrency", edit: func(c *reconciler.Config) { c.Concurrency = 0 }, want: "concurrency"},
		{name: "no tenant", edit: func(c *reconciler.Config) { c.Tenant = " " }, want: "Tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want a message with %q", err, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-10-31T08:30:00Z", want: time.Date(2026, 10, 31, 8, 30, 0, 0, time.UTC)},
		{in: "2026-10-31T10:30:00.250+02:00", want: time.Date(2026, 10, 31, 8, 30, 0, 250e6, time.UTC)},
		{in: "2026-10-31", want: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: " 90m ", want: now.Add(-90 * time.Minute)},
		{in: "", wantErr: true},
		{in: "-1h", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "2026-13-01", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := reconciler.ParseTime(tt.in, now)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestResultString(t *testing.T) {
	r := reconciler.Result{From: base, Until: base.Add(time.Hour), Counts: reconciler.Counts{Listed: 3, Known: 1, Missing: 2, Published: 2}}
	s := r.String()
	for _, want := range []string{"2025-01-01T00:00:00Z", "listed 3", "known 1", "missing 2", "published 2"} {
		if !strings.Contains(s, want) || strings.Contains(s, "\n") {
			t.Errorf("String() = %q, want one line with %q", s, want)
		}
	}
	r.Dense = 1
	if !strings.Contains(r.String(), "DENSE") {
		t.Errorf("String() = %q hides a dense window", r.String())
	}
}
