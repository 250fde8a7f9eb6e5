package tenant_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/internal/auth0fake"
	"github.com/signupsync/signupsync/services/tenant"
)

func TestSecretsFileIsPrivateAndHoldsWhatIngestReads(t *testing.T) {
	srv := auth0fake.New(t)
	inst, _ := newInstaller(t, srv)
	sec := install(t, inst).Secrets

	path := filepath.Join(t.TempDir(), "ingest.env")
	// A file already there, readable by all, is replaced by a private one.
	if err := os.WriteFile(path, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sec.WriteEnvFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "SIGNUPSYNC_ACTION_SECRETS=" + sec.ActionSecret + "\n" +
		"SIGNUPSYNC_EVENT_STREAM_TOKEN=" + sec.EventStreamToken + "\n" +
		"SIGNUPSYNC_LOG_STREAM_TOKEN=" + sec.LogStreamToken + "\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files left next to it: %v", entries)
	}
	// What the file says is what the tenant sends.
	a, _ := srv.Action("signupsync-post-login")
	if a.DeployedSecrets["SIGNUPSYNC_SECRET"] != sec.ActionSecret || srv.EventStreams()[0].Token != sec.EventStreamToken ||
		srv.LogStreams()[0].Sink["httpAuthorization"] != sec.LogStreamToken {
		t.Error("the file does not hold what is installed")
	}
}

func TestSecretsWriteOnlyThePartsInstalled(t *testing.T) {
	var b bytes.Buffer
	if err := (tenant.Secrets{LogStreamToken: "tok"}).WriteEnv(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "SIGNUPSYNC_LOG_STREAM_TOKEN=tok\n" {
		t.Errorf("env %q", b.String())
	}
}

func TestSecretsNeverPrintTheirValues(t *testing.T) {
	sec := tenant.Secrets{ActionSecret: "whsec_value-one", EventStreamToken: "value-two", LogStreamToken: "value-three"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("installed", "secrets", sec, "result", tenant.Result{Secrets: sec})
	js, err := json.Marshal(tenant.Result{Secrets: sec})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(sec), fmt.Sprintf("%+v", sec), fmt.Sprintf("%#v", sec), fmt.Sprintf("%s", sec),
		fmt.Sprintf("%+v", tenant.Result{Secrets: sec}), logged.String(), string(js),
	} {
		if strings.Contains(out, "value-") {
			t.Errorf("a value shows in %s", out)
		}
		if !strings.Contains(out, "SIGNUPSYNC_EVENT_STREAM_TOKEN") {
			t.Errorf("%s does not say which secrets are set", out)
		}
	}
}
