package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func runLifecycle(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("NotInitialized", func(t *testing.T) {
		t.Parallel()
		s := Open(t, h.NewURL(t), nil)
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.ErrorIs(t, err, eventstore.ErrNotInitialized)
		_, err = s.LoadEvents(ctx, eventstore.Filter{Limit: 10})
		require.ErrorIs(t, err, eventstore.ErrNotInitialized)
		_, err = s.Describe(ctx, nil)
		require.ErrorIs(t, err, eventstore.ErrNotInitialized)
		st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
		require.NoError(t, err)
		require.Zero(t, st.Version)
		require.True(t, st.Pending())
	})

	t.Run("InitIsIdempotent", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		require.NoError(t, s.Init(ctx))
		require.NoError(t, s.Init(ctx))
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, d.EventCount)
		st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
		require.NoError(t, err)
		require.Equal(t, st.Latest, st.Version)
		require.Equal(t, st.Latest, d.SchemaVersion)
		require.False(t, st.Pending())
	})

	t.Run("DescribeEmpty", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		d, err := s.Describe(ctx, &eventstore.DescribeOptions{EstimateCounts: true})
		require.NoError(t, err)
		require.Zero(t, d.EventCount)
		require.Zero(t, d.SecretCount)
		require.False(t, d.IsFrozen)
		require.Nil(t, d.LastEventTimestamp, "an empty store has no last event timestamp")
		require.Equal(t, eventstore.CursorAt(0), d.Cursor)
		page, err := s.LoadEvents(ctx, eventstore.Filter{Limit: 100, Cursor: d.Cursor})
		require.NoError(t, err)
		require.Empty(t, page.Events)
		latest, err := s.LatestEvent(ctx, eventstore.Filter{})
		require.NoError(t, err)
		require.Nil(t, latest)
		b, err := json.Marshal(d)
		require.NoError(t, err)
		require.JSONEq(t, `{"eventCount":0,"secretCount":0,"setSecretCount":0,"deletedSecretCount":0,"isFrozen":false,
			"cursor":"`+string(d.Cursor)+`","lastPosition":0,"schemaVersion":`+jsonUint(d.SchemaVersion)+`}`, string(b))
	})

	t.Run("DropRemovesEverything", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		require.NoError(t, s.SaveSnapshot(ctx, "k", []byte("v")))
		require.NoError(t, s.Secrets().SetSecret(ctx, "id", "secret"))
		require.NoError(t, s.Freeze(ctx, ""))
		require.NoError(t, s.Drop(ctx))
		_, err = s.LoadEvents(ctx, eventstore.Filter{Limit: 1})
		require.ErrorIs(t, err, eventstore.ErrNotInitialized)
		require.NoError(t, s.Drop(ctx), "dropping a dropped store succeeds")
		require.NoError(t, s.Init(ctx))
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, d.EventCount)
		require.Zero(t, d.SecretCount)
		require.False(t, d.IsFrozen, "the freeze went with the store")
		_, found, err := s.LoadSnapshot(ctx, "k")
		require.NoError(t, err)
		require.False(t, found)
		require.NoError(t, s.Secrets().SetSecret(ctx, "id", "secret"), "ids of a dropped store are free again")
	})

	t.Run("MigrateDownAndUp", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown})
		require.NoError(t, err)
		require.Zero(t, st.Version)
		_, err = s.SaveEvent(ctx, testEvent(0))
		require.ErrorIs(t, err, eventstore.ErrNotInitialized)
		st, err = s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
		require.NoError(t, err)
		require.Equal(t, st.Latest, st.Version)
		_, err = s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		st, err = s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateForce, Version: st.Latest})
		require.NoError(t, err)
		require.False(t, st.Dirty)
	})

	t.Run("ReopenKeepsEverything", func(t *testing.T) {
		t.Parallel()
		s, url := NewStore(t, h, nil)
		saved, err := s.SaveEvents(ctx, []eventstore.Event{testEvent(0), testEvent(1), testEvent(2)})
		require.NoError(t, err)
		require.NoError(t, s.SaveSnapshot(ctx, "snap", []byte{0, 1, 2, 0xff}))
		require.NoError(t, s.Secrets().SetSecret(ctx, "a", "key-a"))
		require.NoError(t, s.Secrets().SetSecret(ctx, "b", "key-b"))
		_, err = s.Secrets().DeleteSecret(ctx, "b")
		require.NoError(t, err)
		require.NoError(t, s.Freeze(ctx, ""))
		before, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, s.Close())

		s2 := Open(t, url, nil)
		after, err := s2.Describe(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, before, after)
		require.True(t, after.IsFrozen, "freeze survives reopen")
		events, _ := LoadAll(t, s2, eventstore.Filter{})
		require.Equal(t, saved, events[:3])
		snap, found, err := s2.LoadSnapshot(ctx, "snap")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, []byte{0, 1, 2, 0xff}, snap)
		v, found, err := s2.Secrets().GetSecret(ctx, "a")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "key-a", v)
		_, found, err = s2.Secrets().GetSecret(ctx, "b")
		require.NoError(t, err)
		require.False(t, found)
		_, err = s2.SaveEvent(ctx, testEvent(3))
		require.ErrorIs(t, err, eventstore.ErrFrozen)
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Close(), eventstore.ErrClosed)
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.ErrorIs(t, err, eventstore.ErrClosed)
		_, err = s.LoadEvents(ctx, eventstore.Filter{Limit: 1})
		require.ErrorIs(t, err, eventstore.ErrClosed)
		_, err = s.Describe(ctx, nil)
		require.ErrorIs(t, err, eventstore.ErrClosed)
		require.ErrorIs(t, s.Freeze(ctx, ""), eventstore.ErrClosed)
		_, _, err = s.Secrets().GetSecret(ctx, "x")
		require.ErrorIs(t, err, eventstore.ErrClosed)
		_, _, err = s.LoadSnapshot(ctx, "x")
		require.ErrorIs(t, err, eventstore.ErrClosed)
		n := 0
		for _, err := range s.Events(ctx, eventstore.Filter{}) {
			require.ErrorIs(t, err, eventstore.ErrClosed)
			n++
		}
		require.Equal(t, 1, n, "Events yields the error once")
	})

	t.Run("CloseWhileAppending", func(t *testing.T) {
		// Writers append in a loop until Close stops them: each append
		// either commits or fails with ErrClosed, every reported success
		// is stored, and Close returns (within a deadline) even with
		// appends arriving while it runs.
		t.Parallel()
		s, url := NewStore(t, h, nil)
		var okCount, closedCount atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 1; ; n++ {
					_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "close-" + itoa(w), AggregateVersion: int64(n), Type: "T",
						Payload: []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)})
					switch {
					case err == nil:
						okCount.Add(1)
					case errors.Is(err, eventstore.ErrClosed):
						closedCount.Add(1)
						return
					default:
						errs <- err
						return
					}
				}
			}()
		}
		for okCount.Load() < 50 {
			time.Sleep(time.Millisecond)
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Close did not return with appends in flight")
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 16, closedCount.Load(), "every writer ends with ErrClosed")
		s2 := Open(t, url, nil)
		d, err := s2.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, okCount.Load(), d.EventCount, "exactly the reported successes are stored")
	})
}
