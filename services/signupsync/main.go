// Command signupsync is the one binary of signupsync: a subcommand per role
// (ingest, importer), operator commands (status, sample) and dev, which runs
// the whole pipeline in one process with an embedded JetStream server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "signupsync:", err)
		}
		os.Exit(exitCode(err))
	}
}

// env is what run hands to every subcommand instead of globals.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	var ce exitError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1
}

// exitError carries a specific exit status (status: 3 = not found).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

const usage = `usage: signupsync <command> [flags]

Roles:
  ingest     receive Auth0 webhooks and store signups in JetStream
  importer   import stored signups into Firebase Auth
  exchange   session bridge: exchange an Auth0 token for a Firebase custom token
  dev        embedded JetStream + ingest + importer in one process

Operators:
  status     show what happened to an Auth0 user (ledger entry)
  export     create an Auth0 users export and download it
  backfill   publish every user of an Auth0 export file as a signup
  reconcile  sweep the Auth0 Management API for signups no webhook reported
  dlq        list, show, replay or purge dead letters
  report     the cutover report: outcomes, follow-ups, and a Firebase verification pass
  sample     post a correctly signed sample signup to an ingest endpoint
  version    print the version

Run 'signupsync <command> -h' for the flags of a command. Every flag also
reads a SIGNUPSYNC_* environment variable, named in its help.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "ingest":
		return runIngest(ctx, rest, e)
	case "importer":
		return runImporter(ctx, rest, e)
	case "exchange":
		return runExchange(ctx, rest, e)
	case "dev":
		return runDev(ctx, rest, e)
	case "status":
		return runStatus(ctx, rest, e)
	case "export":
		return runExport(ctx, rest, e)
	case "backfill":
		return runBackfill(ctx, rest, e)
	case "reconcile":
		return runReconcile(ctx, rest, e)
	case "dlq":
		return runDLQ(ctx, rest, e)
	case "report":
		return runReport(ctx, rest, e)
	case "sample":
		return runSample(ctx, rest, e)
	case "version":
		fmt.Fprintln(stdout, "signupsync", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}
