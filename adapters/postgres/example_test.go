package postgres_test

import (
	"context"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/adapters/postgres"
	"github.com/esctl/esctl/eventstore"
)

// ExampleNew: a store on the application's own pool, in schema "bank". The
// store does not close the pool. (Not run: it needs a server.)
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // libpq's PGHOST, PGUSER, ... fill in the rest
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	d, err := postgres.NewWithOptions(pool, &postgres.Options{Schema: "bank"})
	if err != nil {
		panic(err)
	}
	s, err := eventstore.New(d, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil {
		panic(err)
	}
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "AccountOpened", Payload: []byte(`{"owner":"Ada"}`)})
	if err != nil {
		panic(err)
	}
}
