package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/adapters/postgres"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// TestSubscribeListenerKilled: the Store's LISTEN connection is killed
// with pg_terminate_backend every 50-200 ms while 8 writers of another
// Store append. The subscriber's poll interval is an hour, so only
// notifications and the reads after each reconnection can deliver: every
// event must still arrive, once, in order.
func TestSubscribeListenerKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	s, err := eventstore.Open(ctx, url, &eventstore.Options{PollInterval: time.Hour})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	writers, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer writers.Close()

	f := follow(t, s)

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	stopKill := make(chan struct{})
	var kills atomic.Int64
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for {
			select {
			case <-stopKill:
				return
			case <-time.After(time.Duration(50+rand.IntN(150)) * time.Millisecond):
			}
			tag, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, postgres.ListenApplicationName)
			if err == nil && tag.RowsAffected() > 0 {
				kills.Add(1)
			}
		}
	}()

	const perWriter = 1000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := int64(1); v <= perWriter; v++ {
				_, err := writers.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("w%d", w), AggregateVersion: v, Type: "T", Payload: []byte(`{}`)})
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stopKill)
	<-killed
	require.Greater(t, kills.Load(), int64(5), "the listener was not killed often enough to test anything")
	f.waitFor(t, 8*perWriter, 60*time.Second, func() string { return fmt.Sprintf("after %d kills of the listener", kills.Load()) })
	// Idle: the tail's polls back off to seconds apart.
	time.Sleep(6 * time.Second)
	// Then one more event commits while the listener is down (the kill
	// waits for the backend to exit; reconnecting waits at least 100 ms),
	// the subscription idle at the end: only the read after the
	// reconnection can deliver it within 2 s, the next poll being seconds
	// away. (Without
	// the wake-up after a reconnection this step fails: checked once by
	// removing it.)
	for start := time.Now(); ; {
		tag, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, postgres.ListenApplicationName)
		require.NoError(t, err)
		if tag.RowsAffected() == 1 {
			break
		}
		require.Less(t, time.Since(start), 10*time.Second, "the listener did not come back")
		time.Sleep(20 * time.Millisecond)
	}
	_, err = writers.SaveEvent(ctx, eventstore.Event{AggregateID: "last", AggregateVersion: 1, Type: "T", Payload: []byte(`{}`)})
	require.NoError(t, err)
	const total = 8*perWriter + 1
	f.waitFor(t, total, 2*time.Second, func() string { return fmt.Sprintf("after %d kills of the listener", kills.Load()) })
	got := f.stop()
	require.Len(t, got, total)
	for i, p := range got {
		require.EqualValues(t, i+1, p, "positions delivered in order, once")
	}
	t.Logf("%d events delivered in order through %d kills of the LISTEN connection", total, kills.Load())
}

// TestSubscribeServerRestart: the server restarts (pg_ctl restart -m fast)
// while writers append and a subscription follows: the subscription waits
// for the server, resumes from its cursor and misses nothing; the writers
// retry what the restart refused. (Without the subscription's retry of
// ErrUnavailable it fails with "database unavailable ... the database
// system is shutting down (SQLSTATE 57P03)": checked once.)
func TestSubscribeServerRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := testdb.NewCluster(t)
	s, err := eventstore.Open(ctx, cluster.URL, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	writers, err := eventstore.Open(ctx, cluster.URL, nil)
	require.NoError(t, err)
	defer writers.Close()

	f := follow(t, s)

	const perWriter = 400
	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unknown := false // the last attempt's outcome is unknown
			for v := int64(1); v <= perWriter; {
				_, err := writers.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("w%d", w), AggregateVersion: v, Type: "T", Payload: []byte(`{}`)})
				switch {
				case err == nil:
					v, unknown = v+1, false
				case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrTimeout), errors.Is(err, eventstore.ErrOutcomeUnknown):
					refused.Add(1) // retry the same version
					unknown = unknown || errors.Is(err, eventstore.ErrOutcomeUnknown)
					time.Sleep(50 * time.Millisecond)
				case unknown && errors.Is(err, eventstore.ErrConflict):
					v, unknown = v+1, false // the attempt of unknown outcome was stored
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, cluster.Restart("fast"))
	wg.Wait()
	d, err := writers.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 4*perWriter, d.LastPosition)
	f.waitFor(t, 4*perWriter, 60*time.Second, func() string { return "after the restart" })
	got := f.stop()
	for i, p := range got {
		require.EqualValues(t, i+1, p, "positions delivered in order, once")
	}
	t.Logf("%d events delivered in order across a server restart (%d appends refused during it and retried)", len(got), refused.Load())
}

// followed collects the positions a subscription from the start delivers.
type followed struct {
	mu     sync.Mutex
	got    []int64
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func follow(t *testing.T, s *eventstore.Store) *followed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &followed{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-f.done })
	go func() {
		defer close(f.done)
		for d, err := range s.Subscribe(ctx, eventstore.Filter{}) {
			f.mu.Lock()
			if err != nil {
				f.err = err
				f.mu.Unlock()
				return
			}
			if d.Event != nil {
				f.got = append(f.got, d.Event.Position)
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// waitFor waits until n events were delivered, failing the test after
// within (when says under what).
func (f *followed) waitFor(t *testing.T, n int, within time.Duration, when func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		f.mu.Lock()
		got, err := len(f.got), f.err
		f.mu.Unlock()
		require.NoError(t, err)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered %s", got, n, when())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the subscription and returns what it delivered.
func (f *followed) stop() []int64 {
	f.cancel()
	<-f.done
	return f.got
}
