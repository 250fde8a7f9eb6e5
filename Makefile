# signupsync — see README.md. Every target works on a fresh machine: the
# Firebase Auth emulator (firebase-tools from npm) is installed on demand
# into the git-ignored .cache/ folder.

SHELL          := /bin/bash
GO             ?= go
BIN            := bin/signupsync
FIREBASE_TOOLS := 15.34.2
CACHE          := .cache
FIREBASE       := $(CACHE)/firebase-tools/node_modules/.bin/firebase
VERSION        ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
TEST_TIMEOUT   ?= 30m
FUZZTIME       ?= 20s

# Local run settings (make run); override on the command line.
HTTP_ADDR      ?= 127.0.0.1:8080
NATS_ADDR      ?= 127.0.0.1:4222
EMULATOR_PORT  ?= 9099
PROJECT        ?= demo-signupsync
DEV_SECRET     ?= whsec_c2lnbnVwc3luYy1sb2NhbC1kZXYtc2VjcmV0

.PHONY: all build run test validate-deploy bench bench-backfill chaos lint fuzz emulator docs clean

all: lint test

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./services/signupsync

# The Firebase Auth emulator, pinned, installed once into .cache/.
emulator: $(FIREBASE)
$(FIREBASE):
	@mkdir -p $(CACHE)/firebase-tools
	@test -f $(CACHE)/firebase-tools/package.json || echo '{"private":true}' > $(CACHE)/firebase-tools/package.json
	cd $(CACHE)/firebase-tools && npm install --no-audit --no-fund --loglevel=error firebase-tools@$(FIREBASE_TOOLS)
	@$(FIREBASE) --version >/dev/null

# The whole pipeline on this machine: the Auth emulator plus `signupsync dev`
# (embedded JetStream, ingest, importer). Ctrl-C stops everything.
run: build emulator
	@scripts/run-local.sh "$(BIN)" "$(FIREBASE)" "$(HTTP_ADDR)" "$(NATS_ADDR)" "$(EMULATOR_PORT)" "$(PROJECT)" "$(DEV_SECRET)"

# Unit, integration (embedded JetStream + the Auth emulator) and Action tests,
# race detector on.
test: emulator build
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	SIGNUPSYNC_BIN=$(CURDIR)/$(BIN) node --test deploy/auth0/test/*.test.js
	$(MAKE) validate-deploy

# compose.yaml, Dockerfiles, deploy/k8s, deploy/nats, the dashboard and the
# collector config, checked by their own Go module (no Docker needed).
validate-deploy:
	cd deploy/validate && $(GO) test -count=1 ./...

# Benchmarks: the limits and the pipeline figures of BENCHMARKS.md in one
# run, BENCH_RUNS times; prints the table (BENCHMARKS.md keeps the results).
NATS_SERVER := $(CACHE)/bin/nats-server
BENCH_RUNS  ?= 5
$(NATS_SERVER): go.mod
	$(GO) build -o $(NATS_SERVER) github.com/nats-io/nats-server/v2
bench: build emulator $(NATS_SERVER)
	$(GO) run ./internal/bench -go $(GO) -runs $(BENCH_RUNS) -markdown $(CACHE)/bench-table.md

# The backfill of a BACKFILL_USERS-user export, once, with its limits: published
# into the stream, then imported until the stream is drained or the emulator's
# resident memory reaches EMULATOR_MAX_RSS MiB (it holds 12–17 KB per account).
# Long and memory-hungry: not part of make bench.
BACKFILL_USERS   ?= 1000000
EMULATOR_MAX_RSS ?= 16384
bench-backfill: build emulator $(NATS_SERVER)
	$(GO) run ./internal/bench -runs 0 -large-backfill $(BACKFILL_USERS) -emulator-max-rss $(EMULATOR_MAX_RSS) -markdown $(CACHE)/bench-backfill-table.md

# The long chaos run: five importer SIGKILLs, a broker SIGKILL, a 30 s
# Firebase outage and late duplicates at 200 signups/s, counted to the last
# signup; and the lifecycle run: signups, updates and deletions at 200
# events/s with an importer SIGKILL (the short runs are part of make test).
chaos: emulator
	$(GO) test -race -count=1 -tags chaos -run 'TestChaos|TestLifecycleChaos' -v -timeout 20m ./services/signupsync/

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@# Imports flow one way: nothing in internal/ or events/ imports a service, no service another.
	@out=$$($(GO) list -test -f '{{.ImportPath}} {{join .Imports " "}}' ./internal/... ./events/... ./schemas/... | grep 'signupsync/services/'); \
	 if [ -n "$$out" ]; then echo "imports a service package:"; echo "$$out" | cut -c1-200; exit 1; fi
	@out=$$(for p in $$($(GO) list ./services/... | grep -v /services/signupsync); do $(GO) list -test -f '{{join .Imports "\n"}}' $$p | grep 'signupsync/services/' | grep -Ev "^$$p([ ._/]|$$)" | sed "s|^|$$p imports |"; done | sort -u); \
	 if [ -n "$$out" ]; then echo "a service imports another:"; echo "$$out"; exit 1; fi

# Every fuzz target, FUZZTIME each; new corpus entries land in testdata/fuzz.
FUZZ_PKGS := ./services/ingest ./events ./internal/auth0export ./services/exchange
fuzz:
	@for p in $(FUZZ_PKGS); do for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
		echo "fuzz $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

# docs/configuration.md from the command structs of services/signupsync
# (TestConfigurationReferenceIsCurrent fails while it is stale).
docs:
	$(GO) run ./services/signupsync docs configuration > docs/configuration.md.tmp && mv docs/configuration.md.tmp docs/configuration.md

clean:
	rm -rf bin .data
