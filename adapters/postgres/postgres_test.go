package postgres_test

import (
	"context"
	"testing"

	_ "github.com/esctl/esctl/adapters/postgres"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/eventstore/eventstoretest"
	"github.com/esctl/esctl/internal/testdb"
)

func TestMain(m *testing.M) {
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

var harness = eventstoretest.Harness{
	NewURL: func(t testing.TB) string { return testdb.PostgresURL(t) },
}

func TestConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, harness)
}
