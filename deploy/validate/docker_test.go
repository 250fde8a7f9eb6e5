package validate

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// parseDockerfile parses a Dockerfile with BuildKit's own parser and
// instruction decoder (what `docker build` runs before building), failing
// on parse errors and on BuildKit's build-check warnings.
func parseDockerfile(t *testing.T, elem ...string) ([]instructions.Stage, map[string]string) {
	t.Helper()
	name := strings.Join(elem, "/")
	res, err := parser.Parse(bytes.NewReader(readFile(t, elem...)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", name, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: build check %s: %s", name, line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	return stages, args
}

// TestDockerfile checks deploy/Dockerfile: a Go build stage with module and
// build caches, a static trimmed binary with the version stamped, and a
// small non-root final image whose entrypoint is the binary.
func TestDockerfile(t *testing.T) {
	stages, args := parseDockerfile(t, "deploy", "Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("%d stages, want build and final", len(stages))
	}
	build, final := stages[0], stages[1]
	base := strings.ReplaceAll(build.BaseName, "${GO_VERSION}", args["GO_VERSION"])
	if base != "golang:1.26" {
		t.Errorf("build stage FROM %q, want golang:1.26", base)
	}
	var buildRun string
	caches := map[string]bool{}
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			// Parses and checks the --mount options (BuildKit does this
			// with its variable expander; these use no variables).
			if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
				t.Errorf("RUN %v: %v", c.CmdLine, err)
			}
			for _, m := range instructions.GetMounts(c) {
				if m.Type == instructions.MountTypeCache {
					caches[m.Target] = true
				}
			}
			line := strings.Join(c.CmdLine, " ")
			if strings.Contains(line, "go build") {
				buildRun = line
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "CGO_ENABLED" && kv.Value != "0" {
					t.Errorf("CGO_ENABLED=%s, want 0 (static binary for distroless/static)", kv.Value)
				}
				if kv.Key == "CGO_ENABLED" {
					caches["cgo-off"] = true
				}
			}
		}
	}
	if !caches["cgo-off"] {
		t.Error("build stage does not set CGO_ENABLED=0")
	}
	for _, dir := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
		if !caches[dir] {
			t.Errorf("no cache mount at %s", dir)
		}
	}
	for _, want := range []string{"-trimpath", "-X main.version=${VERSION}", "./services/signupsync"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("go build line %q lacks %q", buildRun, want)
		}
	}

	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(final.BaseName) && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %q, want distroless static nonroot (or scratch)", final.BaseName)
	}
	var user, entrypoint string
	var copied bool
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: the image has no shell")
			}
			entrypoint = strings.Join(c.CmdLine, " ")
		case *instructions.CopyCommand:
			copied = copied || (c.From == build.Name && c.DestPath == "/signupsync")
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage: distroless has no shell")
		}
	}
	if user != "65532:65532" && user != "65532" && user != "nonroot" {
		t.Errorf("final USER %q, want 65532", user)
	}
	if entrypoint != "/signupsync" {
		t.Errorf("ENTRYPOINT %q, want [\"/signupsync\"]", entrypoint)
	}
	if !copied {
		t.Error("final stage does not copy the binary from the build stage to /signupsync")
	}
}

// TestDockerignore: the build context of deploy/Dockerfile (the repository
// root, filtered by deploy/Dockerfile.dockerignore) holds every source the
// build needs and none of the large or local folders.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(path(t, "deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string) bool {
		ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		return ex
	}
	for _, rel := range []string{".cache/firebase-tools/package.json", ".data/jetstream/x", "bin/signupsync", ".git/HEAD", "deploy/auth0/node_modules/x/index.js", "compose.yaml", "README.md"} {
		if !excluded(rel) {
			t.Errorf("%s is in the build context", rel)
		}
	}
	root := repoRoot(t)
	var sources int
	for _, dir := range []string{"go.mod", "go.sum", "events", "schemas", "internal", "services"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			needed := (strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")) ||
				(strings.HasPrefix(rel, "schemas/") && strings.HasSuffix(rel, ".json")) || rel == "go.mod" || rel == "go.sum"
			if needed {
				sources++
				if excluded(rel) {
					t.Errorf("%s is needed by the build but excluded", rel)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if sources < 20 {
		t.Errorf("only %d source files found", sources)
	}
}

// TestEmulatorImage: the emulator image pins the Makefile's firebase-tools,
// runs as a non-root user, and its firebase.json binds 0.0.0.0:9099 without
// the UI.
func TestEmulatorImage(t *testing.T) {
	stages, _ := parseDockerfile(t, "deploy", "emulator", "Dockerfile")
	if len(stages) != 1 || stages[0].BaseName != "node:20-slim" {
		t.Fatalf("stages %v: want one stage FROM node:20-slim", stages)
	}
	makefile := string(readFile(t, "Makefile"))
	m := regexp.MustCompile(`(?m)^FIREBASE_TOOLS\s*:=\s*(\S+)`).FindStringSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile: no FIREBASE_TOOLS")
	}
	var pinned, user string
	var ci, installs bool
	for _, c := range stages[0].Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if kv.Key == "FIREBASE_TOOLS" && kv.Value != nil {
					pinned = *kv.Value
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				ci = ci || (kv.Key == "CI" && kv.Value == "1")
			}
		case *instructions.RunCommand:
			installs = installs || strings.Contains(strings.Join(c.CmdLine, " "), `npm install -g --loglevel=error "firebase-tools@${FIREBASE_TOOLS}"`)
		case *instructions.UserCommand:
			user = c.User
		}
	}
	if pinned != m[1] {
		t.Errorf("firebase-tools %q, Makefile pins %q", pinned, m[1])
	}
	if !installs {
		t.Error("no npm install -g of firebase-tools@${FIREBASE_TOOLS}")
	}
	if !ci {
		t.Error("CI=1 not set (firebase-tools would prompt)")
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("USER %q: want a non-root user", user)
	}

	var cfg struct {
		Emulators struct {
			Auth struct {
				Host string `json:"host"`
				Port int    `json:"port"`
			} `json:"auth"`
			UI struct {
				Enabled bool `json:"enabled"`
			} `json:"ui"`
		} `json:"emulators"`
	}
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "deploy", "emulator", "firebase.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("firebase.json: %v", err)
	}
	if cfg.Emulators.Auth.Host != "0.0.0.0" || cfg.Emulators.Auth.Port != 9099 || cfg.Emulators.UI.Enabled {
		t.Errorf("firebase.json: %+v, want auth on 0.0.0.0:9099 and no UI", cfg.Emulators)
	}

	// compose.yaml points the importer at this port.
	p, err := loadCompose(t, path(t, "compose.yaml"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if e := p.Services["importer"].Environment["FIREBASE_AUTH_EMULATOR_HOST"]; e == nil || !slices.Contains([]string{"firebase-auth-emulator:9099"}, *e) {
		t.Errorf("importer FIREBASE_AUTH_EMULATOR_HOST %v", e)
	}
}
