package snapshots_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/snapshots"
)

// Counter is an aggregate's state: what the events say so far.
type Counter struct {
	Total int64 `json:"total"`
}

func applyCounter(c *Counter, e eventstore.StoredEvent) error {
	var p struct {
		N int64 `json:"n"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return err
	}
	c.Total += p.N
	return nil
}

// openExampleStore opens and initializes a store in a temporary directory.
func openExampleStore() (*eventstore.Store, func()) {
	dir, err := os.MkdirTemp("", "snapshots-example")
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

// Load an aggregate, append its next events, and let the policy save a
// snapshot every 10 events: the next Load reads only the events after it.
func ExampleRepository() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()

	counters, err := snapshots.New(s, "counter", applyCounter, &snapshots.Options[Counter]{Every: 10})
	if err != nil {
		log.Fatal(err)
	}
	c, err := counters.Load(ctx, "counter-1")
	if err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 25; i++ {
		// AggregateID and AggregateVersion are filled in by Append.
		ev := eventstore.Event{Type: "Added", Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
		if _, err := counters.Append(ctx, c, ev); err != nil {
			log.Fatal(err) // a *eventstore.ConflictError if another writer got in first
		}
	}
	fmt.Println("version", c.Version, "total", c.State.Total)

	again, err := counters.Load(ctx, "counter-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("loaded from the snapshot at version", again.Loaded.SnapshotVersion,
		"reading", again.Loaded.EventsRead, "events: total", again.State.Total)
	// Output:
	// version 25 total 325
	// loaded from the snapshot at version 20 reading 5 events: total 325
}

// Run a command: Update loads the aggregate, asks decide for the events, and
// appends them, deciding again on the reloaded state after a concurrency
// conflict.
func ExampleRepository_Update() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()
	counters, err := snapshots.New(s, "counter", applyCounter, nil)
	if err != nil {
		log.Fatal(err)
	}
	errLimit := errors.New("the total may not exceed 10")
	add := func(n int64) snapshots.DecideFunc[Counter] {
		return func(c *snapshots.Aggregate[Counter]) ([]eventstore.Event, error) {
			if c.State.Total+n > 10 {
				return nil, errLimit
			}
			return []eventstore.Event{{Type: "Added", Payload: fmt.Appendf(nil, `{"n":%d}`, n)}}, nil
		}
	}
	for _, n := range []int64{4, 5, 3} {
		out, err := counters.Update(ctx, "counter-2", add(n))
		if errors.Is(err, errLimit) {
			fmt.Println("add", n, "refused:", err)
			continue
		} else if err != nil {
			log.Fatal(err)
		}
		fmt.Println("add", n, "-> version", out.Aggregate.Version, "total", out.Aggregate.State.Total)
	}
	// Output:
	// add 4 -> version 1 total 4
	// add 5 -> version 2 total 9
	// add 3 refused: the total may not exceed 10
}
