package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// flags wraps a FlagSet whose defaults come from SIGNUPSYNC_* variables, so
// every setting can be given either way and the flag wins. Bad values in the
// environment are collected and reported by parse, naming both.
type flags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func newFlags(name string, getenv func(string) string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{fs: fs, getenv: getenv}
}

func (f *flags) usage(name, env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

func (f *flags) String(name, env, def, usage string) *string {
	if v := f.getenv(env); env != "" && v != "" {
		def = v
	}
	return f.fs.String(name, def, f.usage(name, env, usage))
}

// secretSet is what help and usage errors show in place of a credential
// taken from the environment: that it is set, never what it is. Help goes
// to stderr, and so into a pod's log when a deploy gets a flag wrong.
const secretSet = "set, value hidden"

// secretUsage returns the help text of a credential flag, which names the
// variable and, when it is set, says so, and the variable's value.
func (f *flags) secretUsage(name, env, usage string) (help, value string) {
	v := f.getenv(env)
	if env == "" || v == "" {
		return f.usage(name, env, usage), ""
	}
	return usage + " (env " + env + "; " + secretSet + ")", v
}

// Secret is a String flag holding a credential. It is registered with an
// empty default, so help shows no value, and then takes env's value.
func (f *flags) Secret(name, env, usage string) *string {
	usage, v := f.secretUsage(name, env, usage)
	p := f.fs.String(name, "", usage)
	*p = v
	return p
}

// SecretList is a List of credentials, shown in help as Secret is.
func (f *flags) SecretList(name, env, usage string) *listValue {
	usage, v := f.secretUsage(name, env, usage)
	l := &listValue{}
	f.fs.Var(l, name, usage)
	_ = l.Set(v)
	return l
}

// URL is a String flag holding URLs, comma-separated, whose userinfo
// (user:password@, or a token in the user part) is a credential: help shows
// the default with the userinfo replaced by xxxxx.
func (f *flags) URL(name, env, def, usage string) *string {
	if v := f.getenv(env); env != "" && v != "" {
		def = v
	}
	p := f.fs.String(name, redactURLs(def), f.usage(name, env, usage))
	*p = def
	return p
}

// redactURLs replaces the userinfo of each comma-separated URL in s with
// xxxxx. Everything between the scheme and the last '@' counts as userinfo,
// so a password holding '/', '?' or '@' is hidden too, and a part without a
// scheme is taken with the URL before it, so a password holding ',' is
// hidden as well (at worst with a host next to it); s need not parse.
func redactURLs(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var urls []string
	for i, p := range strings.Split(s, ",") {
		if i > 0 && !strings.Contains(p, "://") {
			urls[len(urls)-1] += "," + p
			continue
		}
		urls = append(urls, p)
	}
	for i, u := range urls {
		at := strings.LastIndex(u, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(u[:at], "://"); j >= 0 {
			start = j + len("://")
		}
		// Keep the leading space of "a, b" lists out of the redaction.
		for start < at && u[start] == ' ' {
			start++
		}
		urls[i] = u[:start] + "xxxxx" + u[at:]
	}
	return strings.Join(urls, ",")
}

// List is a comma-separated list.
func (f *flags) List(name, env, def, usage string) *listValue {
	v := &listValue{}
	if e := f.getenv(env); env != "" && e != "" {
		def = e
	}
	_ = v.Set(def)
	f.fs.Var(v, name, f.usage(name, env, usage))
	return v
}

func (f *flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v := f.getenv(env); env != "" && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s (--%s): %q is not a duration", env, name, v))
		} else {
			def = d
		}
	}
	return f.fs.Duration(name, def, f.usage(name, env, usage))
}

func (f *flags) Int(name, env string, def int, usage string) *int {
	if v := f.getenv(env); env != "" && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s (--%s): %q is not an integer", env, name, v))
		} else {
			def = n
		}
	}
	return f.fs.Int(name, def, f.usage(name, env, usage))
}

func (f *flags) Bool(name, env string, def bool, usage string) *bool {
	if v := f.getenv(env); env != "" && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s (--%s): %q is not a boolean", env, name, v))
		} else {
			def = b
		}
	}
	return f.fs.Bool(name, def, f.usage(name, env, usage))
}

func (f *flags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	return errors.Join(f.errs...)
}

type listValue struct{ items []string }

func (l *listValue) String() string { return strings.Join(l.items, ",") }

func (l *listValue) Set(s string) error {
	l.items = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l.items = append(l.items, p)
		}
	}
	return nil
}
