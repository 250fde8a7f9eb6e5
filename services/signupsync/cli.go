package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/alecthomas/kong"
)

// cli is the command line: one struct per command, each embedding the
// shared flag groups (groups.go) it uses.
type cli struct {
	Ingest    ingestCmd    `cmd:"" group:"roles" help:"Receive Auth0 webhooks and store signups in JetStream."`
	Importer  importerCmd  `cmd:"" group:"roles" help:"Import stored signups into Firebase Auth."`
	Exchange  exchangeCmd  `cmd:"" group:"roles" help:"Session bridge: exchange an Auth0 token for a Firebase custom token."`
	Reconcile reconcileCmd `cmd:"" group:"roles" help:"Publish the signups no webhook reported: sweep the Management API (default) or recover failed Event Streams deliveries."`
	Dev       devCmd       `cmd:"" group:"roles" help:"Embedded JetStream, ingest and importer (and the exchange) in one process."`

	Status    statusCmd    `cmd:"" group:"operators" help:"Show what happened to an Auth0 user (its ledger entry); exit status 3 when there is none."`
	Export    exportCmd    `cmd:"" group:"operators" help:"Create an Auth0 users export and download it."`
	Backfill  backfillCmd  `cmd:"" group:"operators" help:"Publish every user of an Auth0 export file as a signup."`
	Passwords passwordsCmd `cmd:"" group:"operators" help:"Import database users with their bcrypt hash from Auth0's password-hash export."`
	DLQ       dlqCmd       `cmd:"" name:"dlq" group:"operators" help:"List, show, replay or purge dead letters."`
	Report    reportCmd    `cmd:"" group:"operators" help:"The cutover report: outcomes, follow-ups, and a Firebase verification pass; exit status 4 when it finds offenders."`
	Auth0     auth0Cmd     `cmd:"" name:"auth0" group:"operators" help:"Install, check or remove signupsync's Actions and streams in the Auth0 tenant."`
	Sample    sampleCmd    `cmd:"" group:"operators" help:"Post a correctly signed sample signup to an ingest endpoint."`
	Version   versionCmd   `cmd:"" group:"operators" help:"Print the version."`

	Docs docsCmd `cmd:"" hidden:"" group:"operators" help:"Generated documentation."`
}

// runner is every command that runs (the leaves of cli).
type runner interface {
	Run(ctx context.Context, e env) error
}

// helpGroups title the groups of the help, in this order.
var helpGroups = []kong.Group{
	{Key: "roles", Title: "Roles:"},
	{Key: "operators", Title: "Operators:"},
	{Key: "subcommands", Title: "Commands:"},
	{Key: "selection", Title: "Selection:", Description: "Criteria of different kinds must all match."},
	{Key: "ingest", Title: "Webhook receivers:"},
	{Key: "importer", Title: "Importer:"},
	{Key: "exchange", Title: "Session exchange:"},
	{Key: "password", Title: "Password fallback of the exchange:"},
	{Key: "firebase", Title: "Firebase:", Description: "FIREBASE_AUTH_EMULATOR_HOST points the Admin SDK at the emulator."},
	{Key: "auth0", Title: "Auth0 Management API:"},
	{Key: "nats", Title: "NATS:"},
	{Key: "topology", Title: "JetStream topology:", Description: "Applied where the command creates the streams and buckets."},
	{Key: "dev", Title: "Dev:"},
	{Key: "process", Title: "Process:", Description: "Roles export traces as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, …)."},
}

// defaultVars are the defaults the tags interpolate (${name}), taken from
// the libraries' DefaultConfig functions so that they are declared once.
func defaultVars() kong.Vars {
	v := kong.Vars{}
	for _, part := range []kong.Vars{processVars(), ingestVars(), importerVars(), exchangeVars(), reconcileVars(), exportVars(), batchVars(), reportVars(), tenantVars()} {
		maps.Copy(v, part)
	}
	return v
}

// parser is one parse of a command line.
type parser struct {
	k       *kong.Kong
	getenv  func(string) string
	stdout  io.Writer
	stderr  io.Writer
	envErrs []error
	helped  bool
	// auth0HTTP is handed to the commands in env (see runWith).
	auth0HTTP *http.Client
}

func newParser(getenv func(string) string, stdout, stderr io.Writer) (*parser, error) {
	p := &parser{getenv: getenv, stdout: stdout, stderr: stderr}
	k, err := kong.New(&cli{},
		kong.Name("signupsync"),
		kong.Description("Moves users from Auth0 into Firebase Auth. Every flag with a variable (env …) can be set either way; the flag wins."),
		kong.Writers(stdout, stderr),
		// Help is printed by kong's help flag, which then calls Exit:
		// never os.Exit, run returns errHelp instead.
		kong.Exit(func(int) { p.helped = true }),
		kong.ExplicitGroups(helpGroups),
		kong.Vars(defaultVars()),
		kong.Resolvers(envResolver(getenv, &p.envErrs)),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.ValueFormatter(helpFormatter(getenv)),
	)
	if err != nil {
		return nil, fmt.Errorf("command line model: %w", err)
	}
	p.k = k
	return p, nil
}

func (p *parser) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		p.appHelp(p.stderr)
		return usageError{errors.New("no command given")}
	}
	if args[0] == "help" {
		args = []string{"--help"}
	}
	if !strings.HasPrefix(args[0], "-") && !p.isCommand(args[0]) {
		p.appHelp(p.stderr)
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	kctx, err := p.k.Parse(args)
	if p.helped {
		if strings.HasPrefix(args[0], "-") {
			return nil // signupsync --help
		}
		return errHelp
	}
	if err := errors.Join(p.envErrs...); err != nil {
		return usageError{err}
	}
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
			err = fmt.Errorf("%w (see '%s --help')", err, pe.Context.Selected().FullPath())
		}
		return usageError{err}
	}
	node := kctx.Selected()
	if node == nil {
		return usageError{errors.New("no command given")}
	}
	cmd, ok := node.Target.Addr().Interface().(runner)
	if !ok {
		return usageError{fmt.Errorf("%s needs a subcommand", node.FullPath())}
	}
	return cmd.Run(ctx, env{getenv: p.getenv, stdout: p.stdout, stderr: p.stderr, fields: newFieldFlags(node), auth0HTTP: p.auth0HTTP})
}

// isCommand reports whether name is a command.
func (p *parser) isCommand(name string) bool {
	for _, c := range p.k.Model.Children {
		if c.Name == name {
			return true
		}
	}
	return false
}

// appHelp writes the help of the binary to w.
func (p *parser) appHelp(w io.Writer) {
	k, err := newParser(p.getenv, w, w)
	if err != nil {
		return
	}
	_, _ = k.k.Parse([]string{"--help"})
}

// versionCmd prints the version.
type versionCmd struct{}

func (versionCmd) Run(_ context.Context, e env) error {
	fmt.Fprintln(e.stdout, "signupsync", version)
	return nil
}
