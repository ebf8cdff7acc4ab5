//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"

	_ "github.com/esctl/esctl/adapters/postgres"
	_ "github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/internal/conformance"
)

// postgresImage is the server the suite runs against.
const postgresImage = "postgres:15-alpine"

func TestConformanceInContainer(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx := context.Background()
	ctr, err := postgres.Run(ctx, postgresImage,
		postgres.WithDatabase("esctl"),
		postgres.WithUsername("esctl"),
		postgres.WithPassword("esctl"),
		postgres.BasicWaitStrategies(),
		testcontainers.WithCmdArgs("-c", "max_connections=300"),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("start %s: %v", postgresImage, err)
	}
	base, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	// One schema per test: a store is one schema (?schema=NAME).
	var n atomic.Int64
	pgURL := func(testing.TB) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("schema", fmt.Sprintf("t%d", n.Add(1)))
		u.RawQuery = q.Encode()
		return u.String()
	}
	sqliteURL := func(t testing.TB) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "store.db")
	}
	conformance.Run(t, conformance.Harness{
		NewURL: pgURL,
		Peers:  map[string]func(testing.TB) string{"sqlite": sqliteURL},
	})
}
