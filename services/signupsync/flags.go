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
