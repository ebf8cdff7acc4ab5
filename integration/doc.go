// Package integration holds the end-to-end tests that need more than the
// default test run provides. The testcontainers path (build tag
// integration) starts PostgreSQL in Docker and runs the whole conformance
// suite against it, for machines that have Docker but no PostgreSQL server
// binaries:
//
//	go test -tags integration ./integration/
//
// Without a Docker engine the test skips (testcontainers reports the
// provider unhealthy). CI does not depend on it: make test finds PostgreSQL
// through internal/testdb (TEST_DATABASE_URL or a throwaway cluster).
package integration
