package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "github.com/esctl/esctl/adapters/sqlite" // links the SQLite engine into Open
	"github.com/esctl/esctl/eventstore"
)

// openExampleStore opens and initializes a store in a temporary directory.
func openExampleStore() (*eventstore.Store, func()) {
	dir, err := os.MkdirTemp("", "eventstore-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Init(ctx); err != nil {
		log.Fatal(err)
	}
	return s, func() { _ = s.Close(); _ = os.RemoveAll(dir) }
}

// Open a store on an embedded SQLite file and create its tables.
func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventstore-example")
	defer os.RemoveAll(dir)

	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil { // idempotent: safe at every start
		log.Fatal(err)
	}
	d, err := s.Describe(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Engine(), d.EventCount, d.IsFrozen)
	// Output: sqlite 0 false
}

// Append events with optimistic concurrency: saving a version that already
// exists is a typed conflict.
func ExampleStore_SaveEvent() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()

	e, err := s.SaveEvent(ctx, eventstore.Event{
		AggregateID:      "account-1",
		AggregateVersion: 1,
		Type:             "AccountOpened",
		Payload:          []byte(`{"owner": "Ada", "currency": "EUR"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Position, e.AggregateVersion, string(e.Payload))

	// A second writer that read the same version loses the race.
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "AccountOpened"})
	var conflict *eventstore.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict on", conflict.AggregateID, "version", conflict.AggregateVersion)
	}
	// Output:
	// 1 1 {"owner":"Ada","currency":"EUR"}
	// conflict on account-1 version 1
}

// Append to an aggregate with an expectation instead of explicit versions:
// the store picks the versions under its write lock.
func ExampleStore_Append() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()

	// NoStream: create the aggregate; it must not exist yet.
	out, err := s.Append(ctx, "account-1", eventstore.NoStream,
		eventstore.EventData{Type: "AccountOpened", Payload: []byte(`{"owner":"Ada"}`)},
		eventstore.EventData{Type: "Deposited", Payload: []byte(`{"amount":10}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].AggregateVersion, out[1].AggregateVersion)

	// Any: append at the next version, whatever it is.
	out, _ = s.Append(ctx, "account-1", eventstore.Any, eventstore.EventData{Type: "Deposited", Payload: []byte(`{"amount":5}`)})
	fmt.Println(out[0].AggregateVersion)

	// Exactly(v): the caller read version 3; its events take 4, 5, ...
	_, err = s.Append(ctx, "account-1", eventstore.Exactly(3), eventstore.EventData{Type: "Withdrawn"})
	fmt.Println(err)

	// A second creation, or a write to an aggregate that does not exist,
	// conflicts.
	_, err = s.Append(ctx, "account-1", eventstore.NoStream, eventstore.EventData{Type: "AccountOpened"})
	fmt.Println(errors.Is(err, eventstore.ErrConflict), err)
	_, err = s.Append(ctx, "account-2", eventstore.StreamExists, eventstore.EventData{Type: "Deposited"})
	fmt.Println(err)
	// Output:
	// 1 2
	// 3
	// <nil>
	// true eventstore: concurrency conflict: expected no stream, aggregate "account-1" is at version 4
	// eventstore: concurrency conflict: expected stream exists, aggregate "account-2" has no events
}

// Read the store page by page with a cursor, as a projection does. The
// cursor is an opaque string to store next to the projection's state.
func ExampleStore_LoadEvents() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		_, err := s.SaveEvent(ctx, eventstore.Event{
			AggregateID: "counter", AggregateVersion: int64(i), Type: "Incremented",
			Payload: fmt.Appendf(nil, `{"by":%d}`, i),
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	var cursor eventstore.Cursor // empty: from the start
	for {
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: cursor, Limit: 2})
		if err != nil {
			log.Fatal(err)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			fmt.Printf("%d:%s ", e.Position, e.Payload)
		}
		fmt.Println("| next page after position", page.Events[len(page.Events)-1].Position)
		cursor = page.Cursor
	}
	// Output:
	// 1:{"by":1} 2:{"by":2} | next page after position 2
	// 3:{"by":3} 4:{"by":4} | next page after position 4
	// 5:{"by":5} | next page after position 5
}

// Events pages for you; the loop body may call the store.
func ExampleStore_Events() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()
	for i, typ := range []string{"Opened", "Deposited", "Withdrawn", "Deposited"} {
		if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "acc", AggregateVersion: int64(i + 1), Type: typ}); err != nil {
			log.Fatal(err)
		}
	}
	for e, err := range s.Events(ctx, eventstore.Filter{EventTypes: []string{"Deposited"}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Position, e.Type)
	}
	// Output:
	// 2 Deposited
	// 4 Deposited
}

// Freeze the store for maintenance: appends fail with ErrFrozen until
// Unfreeze, reads go on.
func ExampleStore_Freeze() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()

	if err := s.Freeze(ctx, "nightly backup"); err != nil {
		log.Fatal(err)
	}
	_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T"})
	fmt.Println(errors.Is(err, eventstore.ErrFrozen))
	fmt.Println(errors.Is(s.Freeze(ctx, ""), eventstore.ErrAlreadyFrozen))

	if err := s.Unfreeze(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T"})
	fmt.Println(err)
	// Output:
	// true
	// true
	// <nil>
}

// Follow the store: the events so far, then each new one as it commits.
// Keep Delivery.Cursor as the checkpoint; a progress step (Event nil) moves
// it when nothing matching was appended.
func ExampleStore_Subscribe() {
	s, done := openExampleStore()
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: 1, Type: "Opened", Payload: []byte(`{}`)}); err != nil {
		log.Fatal(err)
	}
	go func() { // another writer, later
		for v := int64(2); v <= 3; v++ {
			_, _ = s.SaveEvent(ctx, eventstore.Event{AggregateID: "account-1", AggregateVersion: v, Type: "Deposited", Payload: []byte(`{"amount":10}`)})
		}
	}()
	var checkpoint eventstore.Cursor
	for d, err := range s.Subscribe(ctx, eventstore.Filter{AggregateIDs: []string{"account-1"}}) {
		if err != nil {
			log.Fatal(err)
		}
		checkpoint = d.Cursor
		if d.Event == nil {
			continue // progress only
		}
		fmt.Println(d.Event.Position, d.Event.Type)
		if d.Event.AggregateVersion == 3 {
			break
		}
	}
	pos, _ := checkpoint.Position()
	fmt.Println("checkpoint at", pos)
	// Output:
	// 1 Opened
	// 2 Deposited
	// 3 Deposited
	// checkpoint at 3
}
