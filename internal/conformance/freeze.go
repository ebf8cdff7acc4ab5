package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func runFreeze(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("Reason", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		require.NoError(t, s.Freeze(ctx, "moving to PostgreSQL"))
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.True(t, d.IsFrozen)
		require.Equal(t, "moving to PostgreSQL", d.FrozenReason)
		require.NoError(t, s.Unfreeze(ctx))
		d, err = s.Describe(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, d.FrozenReason, "Unfreeze clears the reason")
	})

	t.Run("FreezeUnfreeze", func(t *testing.T) {
		// reSolve's eventstore-freeze-unfreeze tests, in order.
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.False(t, d.IsFrozen)
		require.ErrorIs(t, s.Unfreeze(ctx), eventstore.ErrAlreadyUnfrozen)

		require.NoError(t, s.Freeze(ctx, ""))
		d, err = s.Describe(ctx, nil)
		require.NoError(t, err)
		require.True(t, d.IsFrozen)
		require.ErrorIs(t, s.Freeze(ctx, ""), eventstore.ErrAlreadyFrozen)
		require.NoError(t, s.Unfreeze(ctx))
		d, err = s.Describe(ctx, nil)
		require.NoError(t, err)
		require.False(t, d.IsFrozen)

		require.NoError(t, s.Freeze(ctx, ""))
		_, err = s.SaveEvent(ctx, testEvent(0))
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		_, err = s.SaveEvents(ctx, []eventstore.Event{testEvent(0), testEvent(1)})
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		require.NoError(t, s.Unfreeze(ctx))
		_, err = s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)

		require.NoError(t, s.Freeze(ctx, ""))
		require.ErrorIs(t, s.Secrets().SetSecret(ctx, "secret_id", "secret_content"), eventstore.ErrFrozen)
		require.NoError(t, s.Unfreeze(ctx))
		require.NoError(t, s.Secrets().SetSecret(ctx, "secret_id", "secret_content"))

		// deleteSecret while frozen is the same typed error (reSolve's
		// PostgreSQL adapter threw a plain Error here).
		require.NoError(t, s.Freeze(ctx, ""))
		_, err = s.Secrets().DeleteSecret(ctx, "secret_id")
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		_, err = s.Secrets().DeleteSecret(ctx, "no_such_id")
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		v, found, err := s.Secrets().GetSecret(ctx, "secret_id")
		require.NoError(t, err)
		require.True(t, found, "the refused delete changed nothing")
		require.Equal(t, "secret_content", v)
	})

	t.Run("FrozenStoreStillReads", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		saved, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		require.NoError(t, s.Secrets().SetSecret(ctx, "k", "v"))
		require.NoError(t, s.Freeze(ctx, ""))
		page, err := s.LoadEvents(ctx, eventstore.Filter{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, saved, page.Events[0])
		latest, err := s.LatestEvent(ctx, eventstore.Filter{})
		require.NoError(t, err)
		require.NotNil(t, latest)
		_, found, err := s.Secrets().GetSecret(ctx, "k")
		require.NoError(t, err)
		require.True(t, found)
		secrets, err := s.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Limit: 10})
		require.NoError(t, err)
		require.Len(t, secrets.Secrets, 1)
		require.NoError(t, s.SaveSnapshot(ctx, "snap", []byte("x")), "snapshots are not blocked by freeze")
		require.NoError(t, s.DropSnapshot(ctx, "snap"))
	})

	t.Run("FreezeIsSeenByOtherStores", func(t *testing.T) {
		t.Parallel()
		a, url := NewStore(t, h, nil)
		b := Open(t, url, nil)
		_, err := b.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		require.NoError(t, a.Freeze(ctx, ""))
		_, err = b.SaveEvent(ctx, testEvent(1))
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		require.ErrorIs(t, b.Freeze(ctx, ""), eventstore.ErrAlreadyFrozen)
		require.NoError(t, b.Unfreeze(ctx))
		_, err = a.SaveEvent(ctx, testEvent(1))
		require.NoError(t, err)
	})

	t.Run("FreezeIsABarrier", func(t *testing.T) { t.Parallel(); runFreezeBarrier(t, h) })
	d := h.Concurrency.withDefaults().FreezeRace
	t.Run("FreezeRace", func(t *testing.T) { t.Parallel(); RunFreezeRace(t, h, d, false) })
	t.Run("FreezeRaceOtherProcess", func(t *testing.T) { t.Parallel(); RunFreezeRace(t, h, d, true) })
}

// runFreezeBarrier: writers on two Stores append as fast as they can; once
// Freeze returns, nothing may commit any more. Every append that reported
// success is at or below the end position read right after Freeze returned,
// and that end position never moves.
func runFreezeBarrier(t *testing.T, h Harness) {
	ctx := context.Background()
	a, url := NewStore(t, h, nil)
	b := Open(t, url, nil)
	var frozenAt atomic.Int64 // end position right after Freeze returned; 0 before
	var afterFreezeOK atomic.Int64
	var maxOK atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				startedFrozen := frozenAt.Load() != 0
				e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("w%d", w), AggregateVersion: int64(n), Type: "T"})
				switch {
				case err == nil:
					if startedFrozen {
						afterFreezeOK.Add(1)
					}
					for {
						m := maxOK.Load()
						if e.Position <= m || maxOK.CompareAndSwap(m, e.Position) {
							break
						}
					}
				case errors.Is(err, eventstore.ErrFrozen):
					n-- // not stored: retry the same version
					time.Sleep(time.Millisecond)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	// Let the writers get going, then freeze.
	deadline := time.Now().Add(10 * time.Second)
	for maxOK.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, a.Freeze(ctx, ""))
	d, err := a.Describe(ctx, nil)
	require.NoError(t, err)
	frozenAt.Store(max(d.LastPosition, 1))
	time.Sleep(200 * time.Millisecond) // writers keep trying while frozen
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, afterFreezeOK.Load(), "appends started after Freeze returned must fail")
	require.LessOrEqual(t, maxOK.Load(), d.LastPosition, "an append committed after Freeze returned")
	d2, err := a.Describe(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, d.LastPosition, d2.LastPosition, "the store moved while frozen")
	require.Equal(t, d.EventCount, d2.EventCount)
	require.Positive(t, d.LastPosition)
}
