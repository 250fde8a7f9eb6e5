// Command signupsync is the one binary of signupsync: a subcommand per role
// (ingest, importer, exchange, reconcile), operator commands (status, dlq,
// report, …) and dev, which runs the whole pipeline in one process with an
// embedded JetStream server. Each command is a struct of its flags (cli.go
// and the *_cmd.go files); the long-running ones run through the one role
// lifecycle of internal/rolerun.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
		if !errors.Is(err, errHelp) {
			fmt.Fprintln(os.Stderr, "signupsync:", err)
		}
		os.Exit(exitCode(err))
	}
}

// env is what run hands to every command instead of globals.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// fields tells the configuration fields of the chosen command as its
	// flags (see explain).
	fields fieldFlags
	// auth0HTTP is the auth0 commands' HTTP client (nil: the default).
	auth0HTTP *http.Client
}

// errHelp is returned after a command's help was printed (exit status 2,
// like any usage that ran nothing).
var errHelp = errors.New("help requested")

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exitError carries a specific exit status (status: 3 = not found; report:
// 4 = offenders).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, errHelp) {
		return 2
	}
	var ce exitError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1
}

// run parses args into the command structs (flags, then SIGNUPSYNC_*
// variables read through getenv, then defaults) and runs the chosen one.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdout, stderr, nil)
}

// runWith is run with the HTTP client the auth0 commands reach the
// Management API with (nil: the default, which trusts the system's roots);
// tests hand in the client of their TLS Auth0 fake.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, auth0HTTP *http.Client) error {
	p, err := newParser(getenv, stdout, stderr)
	if err != nil {
		return err
	}
	p.auth0HTTP = auth0HTTP
	return p.run(ctx, args)
}
