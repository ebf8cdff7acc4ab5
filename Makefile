# esctl: run `make` for the list of targets.
.DEFAULT_GOAL := help

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHARGS ?=
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
DB_DIR    ?= $(CURDIR)/.pgdata
GOLANGCI_LINT ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: test
test: ## run every test, race detector on, both engines (PostgreSQL from TEST_DATABASE_URL or a throwaway cluster), then the crash and kill-and-resume tests without -race, then compile the integration module
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -timeout 20m -run 'TestToolingConformance/NDJSON/Crash' ./adapters/...
	$(GO) test -count=1 -timeout 20m -run 'TestConsumerConformance/(KillResume|Group)' ./adapters/...
	$(GO) test -count=1 -timeout 20m -run 'TestKillResume500k' ./cmd/esctl
	cd integration && $(GO) vet -tags integration ./...

.PHONY: check
check: lint ## gofmt, go vet, golangci-lint, go mod tidy check (both modules), then make test
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@cp go.mod /tmp/esctl-go.mod.bak && cp go.sum /tmp/esctl-go.sum.bak && $(GO) mod tidy && \
		if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum"; git diff -- go.mod go.sum; exit 1; fi
	@cd integration && $(GO) mod tidy && if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed integration/go.mod/go.sum"; exit 1; fi
	@if git grep -nE '"(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP) ' -- '*.go' ':!adapters/**' ':!migrations/**' ':!**/*_test.go' ':!integration/**' ':!bench/**'; then \
		echo "SQL text outside adapters/ and migrations/"; exit 1; fi
	$(MAKE) test

.PHONY: lint
lint: ## golangci-lint (.golangci.yml: errorlint, depguard), the pinned version through go run
	$(GO) run $(GOLANGCI_LINT) run ./...

.PHONY: demo
demo: ## run the demo on a SQLite store in the current directory
	$(GO) run ./cmd/esctl demo

.PHONY: build
build: ## build bin/esctl with the version stamped
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/esctl ./cmd/esctl

.PHONY: bench
bench: ## benchmark table, store vs limit, both engines (about 16 to 36 min, the disk decides; BENCHARGS="-quick" for ~2.5 min, see docs/benchmarks.md)
	$(GO) run ./bench $(BENCHARGS)

.PHONY: bench-scale
bench-scale: ## the cost curve: one store per engine grown to 1M, 3M and 10M events, the same figures at each size (prints its expected duration first; under 45 min on 2 cores)
	$(GO) run ./bench -scale $(BENCHARGS)

.PHONY: db/start
db/start: ## start a local PostgreSQL for the tests in $(DB_DIR); prints the TEST_DATABASE_URL to export
	@scripts/pgcluster start $(DB_DIR)

.PHONY: db/standby
db/standby: ## start a hot standby of the db/start cluster in $(DB_DIR)-standby (PGCLUSTER_SYNC=1: synchronous); prints its URL
	@scripts/pgcluster standby $(DB_DIR)-standby $(DB_DIR)

.PHONY: db/stop
db/stop: ## stop the PostgreSQL started by db/start (its data stays in $(DB_DIR))
	@if [ -f $(DB_DIR)-standby/data/PG_VERSION ]; then scripts/pgcluster stop $(DB_DIR)-standby || true; fi
	@scripts/pgcluster stop $(DB_DIR)

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz '^FuzzCompact$$' -fuzztime $(FUZZTIME) ./internal/jsonx
	$(GO) test -run '^$$' -fuzz '^FuzzCursor$$' -fuzztime $(FUZZTIME) ./eventstore
	$(GO) test -run '^$$' -fuzz '^FuzzParseEventLine$$' -fuzztime $(FUZZTIME) ./internal/ndjson
	$(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(FUZZTIME) ./eventstore
	$(GO) test -run '^$$' -fuzz '^FuzzRedactedOutput$$' -fuzztime $(FUZZTIME) ./cmd/esctl
	$(GO) test -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZTIME) ./adapters/sqlite
	$(GO) test -run '^$$' -fuzz '^FuzzImportCut$$' -fuzztime $(FUZZTIME) ./adapters/sqlite
