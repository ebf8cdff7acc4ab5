package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"

	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// failingGroups wraps a real driver: the first append transaction
// carrying more than one request fails as a whole with err, as the unique
// key would fail a group whose pre-check missed a conflict, or as the
// engine would refuse one request's value. (The SQLite driver appends
// through Write: each request is one InsertEvents.)
type failingGroups struct {
	driver.Driver
	err    error
	failed atomic.Bool
}

func (f *failingGroups) Write(ctx context.Context, p *driver.WriteParams, fn func(driver.Tx) error) error {
	return f.Driver.Write(ctx, p, func(tx driver.Tx) error {
		return fn(&failingTx{Tx: tx, f: f})
	})
}

type failingTx struct {
	driver.Tx
	f       *failingGroups
	inserts int
}

func (t *failingTx) InsertEvents(ctx context.Context, p *driver.InsertEventsParams) (int, error) {
	t.inserts++
	if t.inserts > 1 && t.f.failed.CompareAndSwap(false, true) {
		return 0, t.f.err
	}
	return t.Tx.InsertEvents(ctx, p)
}

func TestGroupFailureIsRetriedRequestByRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"UniqueKeyFiredForTheGroup", fmt.Errorf("append: %w", &eventstore.ConflictError{})},
		{"EngineRefusedAValue", errors.New("invalid input syntax for type json")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			base, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "es.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer base.Close()
			if err := base.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := base.SaveEvent(ctx, eventstore.Event{AggregateID: "taken", AggregateVersion: 1, Type: "T"}); err != nil {
				t.Fatal(err)
			}
			f := &failingGroups{Driver: access.Driver(base), err: tt.err}
			s, _ := eventstore.New(f, nil)
			defer s.Close()
			for attempt := 0; !f.failed.Load() && attempt < 50; attempt++ {
				var wg sync.WaitGroup
				errs := make([]error, 40)
				start := make(chan struct{})
				for i := range errs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := fmt.Sprintf("a-%d-%d", attempt, i)
						if i == 0 {
							id = "taken"
						}
						<-start
						_, errs[i] = s.SaveEvent(ctx, eventstore.Event{AggregateID: id, AggregateVersion: 1, Type: "T"})
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if i == 0 {
						var ce *eventstore.ConflictError
						if !errors.As(err, &ce) || ce.AggregateID != "taken" {
							t.Fatalf("request 0: %v, want a conflict on taken/1", err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("request %d failed with its group's error: %v", i, err)
					}
				}
			}
			if !f.failed.Load() {
				t.Fatal("no group of more than one request was formed: the failure was never injected")
			}
			d, err := s.Describe(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d.EventCount != d.LastPosition {
				t.Fatalf("positions not dense: %d events, last position %d", d.EventCount, d.LastPosition)
			}
		})
	}
}
