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
	"strings"
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

// command is one subcommand of the binary.
type command struct {
	name    string
	role    bool // listed under Roles in the usage, else under Operators
	summary string
	// actions are the words the command wants before its flags (dlq list),
	// nil when it takes flags at once.
	actions []string
	run     func(context.Context, []string, env) error
}

// commands is the command table: run dispatches on it and the usage lists
// it, so a command added here is reachable, documented and covered by the
// tests that walk every command.
var commands = []command{
	{name: "ingest", role: true, summary: "receive Auth0 webhooks and store signups in JetStream", run: runIngest},
	{name: "importer", role: true, summary: "import stored signups into Firebase Auth", run: runImporter},
	{name: "exchange", role: true, summary: "session bridge: exchange an Auth0 token for a Firebase custom token", run: runExchange},
	{name: "dev", role: true, summary: "embedded JetStream + ingest + importer in one process", run: runDev},
	{name: "status", summary: "show what happened to an Auth0 user (ledger entry)", run: runStatus},
	{name: "export", summary: "create an Auth0 users export and download it", run: runExport},
	{name: "backfill", summary: "publish every user of an Auth0 export file as a signup", run: runBackfill},
	{name: "passwords", summary: "import database users with their bcrypt hash from Auth0's password-hash export", run: runPasswords},
	{name: "reconcile", summary: "sweep the Auth0 Management API for signups no webhook reported; 'reconcile deliveries' recovers failed Event Streams deliveries", actions: []string{"deliveries"}, run: runReconcile},
	{name: "dlq", summary: "list, show, replay or purge dead letters", actions: dlqActions, run: runDLQ},
	{name: "report", summary: "the cutover report: outcomes, follow-ups, and a Firebase verification pass", run: runReport},
	{name: "sample", summary: "post a correctly signed sample signup to an ingest endpoint", run: runSample},
	{name: "version", summary: "print the version", run: runVersion},
}

func runVersion(_ context.Context, _ []string, e env) error {
	fmt.Fprintln(e.stdout, "signupsync", version)
	return nil
}

// usage is the binary's help, listing the command table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: signupsync <command> [flags]\n")
	for _, group := range []struct {
		title string
		role  bool
	}{{"Roles", true}, {"Operators", false}} {
		fmt.Fprintf(&b, "\n%s:\n", group.title)
		for _, c := range commands {
			if c.role == group.role {
				fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
			}
		}
	}
	b.WriteString("\nRun 'signupsync <command> -h' for the flags of a command. Every flag also\nreads a SIGNUPSYNC_* environment variable, named in its help.")
	return b.String()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage())
		return usageError{errors.New("no command given")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage())
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, rest, e)
		}
	}
	fmt.Fprintln(stderr, usage())
	return usageError{fmt.Errorf("unknown command %q", name)}
}
