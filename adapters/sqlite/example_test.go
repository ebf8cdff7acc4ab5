package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
)

// ExampleNew: a store on *sql.DB handles the application opened itself, one
// writer connection (with the settings of sqlite.DSN) and a reader pool.
// The store does not close them.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "events.db")

	w, err := sql.Open("sqlite", sqlite.DSN(path, false))
	if err != nil {
		panic(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1) // SQLite has one writer; the store queues its appends
	r, err := sql.Open("sqlite", sqlite.DSN(path, true))
	if err != nil {
		panic(err)
	}
	defer r.Close()

	s, err := eventstore.New(sqlite.NewWithOptions(w, &sqlite.Options{ReadDB: r}), nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil {
		panic(err)
	}
	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "AccountOpened", Payload: []byte(`{"owner":"Ada"}`)})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Position, e.Type)
	// Output: 1 AccountOpened
}
