package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/signupsync/signupsync/internal/rolerun"
)

// Every flag of the command structs may carry two tags of ours besides
// kong's:
//
//   - envvar:"VAR[,OTHER]": the variables that set it, the first
//     non-empty one winning, and the flag over all. (Not kong's env tag:
//     kong reads os.Getenv, run reads the getenv it is given.)
//   - cfg:"scope.Field[,…]": the configuration field(s) it sets, so a
//     Validate error naming a field can be told as the flag (explain).

// list is a comma-separated list: items are trimmed, empty ones dropped,
// and a repeated flag replaces the list.
type list []string

func (l *list) Decode(ctx *kong.DecodeContext) error {
	var s string
	if err := ctx.Scan.PopValueInto("list", &s); err != nil {
		return err
	}
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// secret is a credential: help says whether its variable is set, never
// what it holds, and it has no default to show.
type secret string

// secretList is a list of credentials, shown in help as secret is.
type secretList struct{ list }

// urls holds comma-separated URLs whose userinfo (user:password@, or a
// token in the user part) is a credential: help shows them redacted.
type urls string

// secretSet is what help shows in place of a credential taken from the
// environment. Help goes to a terminal or a pod's log, so that it is set
// is all it may say.
const secretSet = "set, value hidden"

var (
	secretType     = reflect.TypeFor[secret]()
	secretListType = reflect.TypeFor[secretList]()
	urlsType       = reflect.TypeFor[urls]()
)

// tagList splits a comma-separated tag value.
func tagList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// envNames are the variables of a flag, in order.
func envNames(f *kong.Flag) []string { return tagList(f.Tag.Get("envvar")) }

// envResolver gives each flag not on the command line the value of the
// first non-empty variable its envvar tag names, parsed as the flag package
// parsed them before kong: booleans by strconv.ParseBool, integers by
// strconv.Atoi, durations by time.ParseDuration. A bad value is added to
// *errs, naming the variable and the flag, and the flag keeps its default.
func envResolver(getenv func(string) string, errs *[]error) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
		for _, name := range envNames(f) {
			v := getenv(name)
			if v == "" {
				continue
			}
			val, err := parseEnv(f.Target.Type(), v)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s (--%s): %w", name, f.Name, err))
				return nil, nil
			}
			return val, nil
		}
		return nil, nil
	})
}

func parseEnv(t reflect.Type, v string) (any, error) {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		if _, err := time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("%q is not a duration", v)
		}
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", v)
		}
		return b, nil
	case t.Kind() == reflect.Int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	}
	return v, nil
}

// helpFormatter is kong's HelpValueFormatter: a flag's help, then how its
// variables are set. A credential's variable shows "set, value hidden",
// a URL's its value with the userinfo redacted, any other its value.
func helpFormatter(getenv func(string) string) kong.HelpValueFormatter {
	return func(v *kong.Value) string {
		help := v.Help
		if v.Flag == nil {
			return help
		}
		if v.IsBool() && v.Default == "true" {
			help += " (default true)"
		}
		envs := envNames(v.Flag)
		if len(envs) == 0 {
			return help
		}
		s := " (env " + strings.Join(envs, " or ")
		for _, name := range envs {
			val := getenv(name)
			if val == "" {
				continue
			}
			s += "; "
			if len(envs) > 1 {
				s += name + " "
			}
			switch v.Target.Type() {
			case secretType, secretListType:
				s += secretSet
			case urlsType:
				s += fmt.Sprintf("set: %q", rolerun.RedactURLs(val))
			default:
				s += fmt.Sprintf("set: %q", val)
			}
			break
		}
		return help + s + ")"
	}
}

// fieldFlags maps a configuration field, "scope.Field" as the cfg tags
// spell it, to the flag (and variables) of the chosen command that set it.
type fieldFlags map[string]string

// newFieldFlags indexes the flags of node and its parents.
func newFieldFlags(node *kong.Node) fieldFlags {
	ff := fieldFlags{}
	for n := node; n != nil; n = n.Parent {
		for _, f := range n.Flags {
			ref := "--" + f.Name
			if envs := envNames(f); len(envs) > 0 {
				ref += " (" + strings.Join(envs, " or ") + ")"
			}
			for _, field := range tagList(f.Tag.Get("cfg")) {
				ff[field] = ref
			}
		}
	}
	return ff
}

// explain returns err with every field of scopes its text names (outside
// double quotes, which hold values) told as the flag that sets it: the
// libraries' Validate errors name Config fields ("BatchSize 5000: must be
// 1 to 1000"), the user sets flags. errors.Is and As still see err.
func (ff fieldFlags) explain(err error, scopes ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var b strings.Builder
	quoted := false
	for i := 0; i < len(msg); {
		c := msg[i]
		if c == '"' {
			quoted = !quoted
		}
		if quoted || !isLetter(c) || (i > 0 && (isIdent(msg[i-1]) || msg[i-1] == '.')) {
			b.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(msg) && (isIdent(msg[j]) || msg[j] == '.') {
			j++
		}
		tok := strings.TrimRight(msg[i:j], ".")
		i += len(tok)
		ref := tok
		for _, s := range scopes {
			if r, ok := ff[s+"."+tok]; ok {
				ref = r
				break
			}
		}
		b.WriteString(ref)
	}
	return explained{msg: b.String(), err: err}
}

type explained struct {
	msg string
	err error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.err }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool  { return isLetter(c) || c >= '0' && c <= '9' || c == '_' }

// usage wraps a configuration error of the chosen command as a usage
// error, its fields told as flags.
func (e env) usage(err error, scopes ...string) error {
	if err == nil {
		return nil
	}
	return usageError{e.fields.explain(err, scopes...)}
}
