package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/esctl/esctl/eventstore"
)

// The README's "short tour of the library", step by step, as a program
// that runs (go test runs it and checks its output). Keep the two in step.
func Example_tour() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventstore-tour")
	defer os.RemoveAll(dir)

	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"), nil) // or postgres://...?schema=bank
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil { // applies the embedded migrations; idempotent
		log.Fatal(err)
	}

	// Append with optimistic concurrency.
	e, err := s.SaveEvent(ctx, eventstore.Event{
		AggregateID: "account-1", AggregateVersion: 1, Type: "AccountOpened",
		Payload: []byte(`{"owner":"Ada"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("saved at position", e.Position)
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "AccountOpened"})
	var conflict *eventstore.ConflictError
	if errors.As(err, &conflict) { /* reload the aggregate and retry the command */
		fmt.Println("conflict:", conflict.AggregateID, conflict.AggregateVersion)
	}

	// Several events, of one or several aggregates, atomically.
	_, err = s.SaveEvents(ctx, []eventstore.Event{
		{AggregateID: "account-1", AggregateVersion: 2, Type: "MoneyDeposited", Payload: []byte(`{"amount":10}`)},
		{AggregateID: "account-2", AggregateVersion: 1, Type: "AccountOpened", Payload: []byte(`{"owner":"Grace"}`)},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Or append to one aggregate with an expectation and let the store pick the versions
	// (Any, NoStream, StreamExists, Exactly(v)); a violated one is a *ConflictError.
	out, err := s.Append(ctx, "account-3", eventstore.NoStream,
		eventstore.EventData{Type: "AccountOpened", Payload: []byte(`{"owner":"Alan"}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("account-3 at version", out[0].AggregateVersion)
	_, err = s.Append(ctx, "account-3", eventstore.NoStream, eventstore.EventData{Type: "AccountOpened"})
	fmt.Println(err)

	// Read by cursor, a page at a time (a projection keeps page.Cursor as its checkpoint).
	var checkpoint eventstore.Cursor
	page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: checkpoint, EventTypes: []string{"AccountOpened"}, Limit: 100})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("opened:", len(page.Events))
	checkpoint = page.Cursor // the next read starts after what this page returned
	page, err = s.LoadEvents(ctx, eventstore.Filter{Cursor: checkpoint, EventTypes: []string{"AccountOpened"}, Limit: 100})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("opened since the checkpoint:", len(page.Events))

	// Or let the store page for you; the loop body may call the store.
	for e, err := range s.Events(ctx, eventstore.Filter{AggregateIDs: []string{"account-1"}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Position, e.Type, string(e.Payload))
	}

	// Maintenance, snapshots, secrets.
	if err := s.Freeze(ctx, "migrating"); err != nil { // appends fail with ErrFrozen until Unfreeze; survives restarts
		log.Fatal(err)
	}
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-2", AggregateVersion: 2, Type: "AccountClosed"})
	fmt.Println("frozen:", errors.Is(err, eventstore.ErrFrozen))
	if err := s.Unfreeze(ctx); err != nil {
		log.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, "account-1", []byte(`{"balance":10}`)); err != nil {
		log.Fatal(err)
	}
	if err := s.Secrets().SetSecret(ctx, "customer-42", "key material"); err != nil { // ids are never reusable
		log.Fatal(err)
	}
	d, err := s.Describe(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("events:", d.EventCount, "secrets:", d.SecretCount)
	// Output:
	// saved at position 1
	// conflict: account-1 1
	// account-3 at version 1
	// eventstore: concurrency conflict: expected no stream, aggregate "account-3" is at version 1
	// opened: 3
	// opened since the checkpoint: 0
	// 1 AccountOpened {"owner":"Ada"}
	// 2 MoneyDeposited {"amount":10}
	// frozen: true
	// events: 5 secrets: 1
}
