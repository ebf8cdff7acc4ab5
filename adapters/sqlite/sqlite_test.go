package sqlite_test

import (
	"context"
	"testing"

	_ "github.com/esctl/esctl/adapters/postgres" // the peer engine of the round trips
	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/eventstore/eventstoretest"
	"github.com/esctl/esctl/internal/testdb"
)

func TestMain(m *testing.M) {
	eventstoretest.CrashChild() // when this process is the crash test's child
	testdb.InitStoreFunc = func(ctx context.Context, url string) error {
		s, err := eventstore.Open(ctx, url, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Init(ctx)
	}
	testdb.Main(m)
}

// harness gives each test its own SQLite file; round trips also go through
// PostgreSQL.
var harness = eventstoretest.Harness{
	NewURL: testdb.SQLiteURL,
	Peers:  map[string]func(testing.TB) string{"postgres": testdb.PostgresURL},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, harness)
}

func TestEngineName(t *testing.T) {
	if got := sqlite.New(nil).Name(); got != "sqlite" {
		t.Fatalf("Name() = %q", got)
	}
}
