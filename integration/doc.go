// Package integration holds the end-to-end tests that need more than the
// default test run provides. The testcontainers path (build tag
// integration) starts PostgreSQL in Docker and runs the whole conformance
// suite against it, for machines that have Docker but no PostgreSQL server
// binaries:
//
//	cd integration && go test -tags integration ./...
//
// It is a module of its own (github.com/esctl/esctl/integration, using the
// library from ../ through a replace directive), so that testcontainers,
// Docker's client and OpenTelemetry never enter the go.sum of an
// application that imports esctl. make test compiles it (go vet with the
// tag) without running it.
//
// Without a Docker engine the test skips (testcontainers reports the
// provider unhealthy). CI does not depend on it: make test finds PostgreSQL
// through internal/testdb (TEST_DATABASE_URL or a throwaway cluster).
package integration
