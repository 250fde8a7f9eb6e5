package main

import (
	"os"
	"strings"
	"testing"
)

// TestConfigurationReferenceIsCurrent: docs/configuration.md is what the
// command structs generate, so a flag, variable or default changed in code
// is changed in the reference too.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	want, err := configurationReference()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("%v; generate it from the repository root: %s", err, regenerate)
	}
	if string(got) == want {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	line := 0
	for line < min(len(gl), len(wl)) && gl[line] == wl[line] {
		line++
	}
	g, w := "(end of file)", "(end of file)"
	if line < len(gl) {
		g = gl[line]
	}
	if line < len(wl) {
		w = wl[line]
	}
	t.Fatalf("docs/configuration.md is stale from line %d:\n have: %s\n want: %s\nregenerate it from the repository root: %s (make docs)", line+1, g, w, regenerate)
}

// TestConfigurationReferenceShowsNoEnvironment: the reference reads no
// variable, so a credential set where it is generated cannot reach it.
func TestConfigurationReferenceShowsNoEnvironment(t *testing.T) {
	for k, v := range secretEnv {
		t.Setenv(k, v)
	}
	ref, err := configurationReference()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ref, secretMark) {
		t.Fatal("the reference holds a credential from the environment")
	}
	for _, want := range []string{"## reconcile deliveries", "| `--rate` (was `--rps`) | `SIGNUPSYNC_RECONCILE_RPS` |", "### Auth0 Management API"} {
		if !strings.Contains(ref, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
