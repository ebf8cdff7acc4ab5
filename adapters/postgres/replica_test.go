package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/internal/testdb"
)

// waitForStore waits until the standby at u has replayed the store's
// creation.
func waitForStore(t testing.TB, u string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer conn.Close(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('public.store_state') IS NOT NULL`).Scan(&ok))
		if ok {
			return
		}
		require.True(t, time.Now().Before(deadline), "the standby has no store at %s", u)
		time.Sleep(20 * time.Millisecond)
	}
}

func databaseOf(t testing.TB, rawURL string) string {
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

// TestReplicaTailCheck runs the conformance suite's tail check with its
// readers (two pagers and a subscription) on a streaming standby
// (Options.ReadURL) while 16 writers on 2 Stores append on the primary:
// every event seen once, in order, none skipped. The standby refuses
// LISTEN, so the subscription must find that out and poll.
func TestReplicaTailCheck(t *testing.T) {
	t.Parallel()
	r := testdb.NewReplicated(t, false)
	var n atomic.Int64
	h := conformance.Harness{
		NewURL: func(t testing.TB) string {
			return testdb.CreateDatabase(t, r.PrimaryURL, fmt.Sprintf("tail_%d", n.Add(1)))
		},
		ReadURL: func(t testing.TB, u string) string {
			ru := testdb.WithDatabase(r.StandbyURL, databaseOf(t, u))
			testdb.WaitForDatabase(t, ru)
			waitForStore(t, ru) // the suite initialized the store on the primary
			return ru
		},
	}
	conformance.RunTailCheck(t, h, conformance.Concurrency{TailStores: 2, TailWriters: 8, TailPerWriter: 1000})
}

// TestReplicaCursorAhead: a cursor from the primary that the standby has
// not reached is lag, not the end: LoadEvents returns an empty page at it,
// Subscribe waits; a cursor beyond the primary's end is still refused.
func TestReplicaCursorAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testdb.NewReplicated(t, false)
	pu := testdb.CreateDatabase(t, r.PrimaryURL, "ahead")
	w, err := eventstore.Open(ctx, pu, nil)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Init(ctx))
	su := testdb.WithDatabase(r.StandbyURL, "ahead")
	testdb.WaitForDatabase(t, su)
	rs, err := eventstore.Open(ctx, pu, &eventstore.Options{ReadURL: su})
	require.NoError(t, err)
	defer rs.Close()

	_, err = rs.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(5), Limit: 10})
	var beyond *eventstore.CursorBeyondEndError
	require.ErrorAs(t, err, &beyond, "beyond the primary's end")

	// Stop the standby's replay, append on the primary: the standby lags.
	admin, err := pgx.Connect(ctx, su)
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `SELECT pg_wal_replay_pause()`)
	require.NoError(t, err)
	for i := range 5 {
		_, err := w.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: int64(i + 1), Type: "T", Payload: []byte(`{}`)})
		require.NoError(t, err)
	}
	page, err := rs.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(3), Limit: 10})
	require.NoError(t, err, "a cursor the standby has not reached is lag")
	require.Empty(t, page.Events)
	require.Equal(t, eventstore.CursorAt(3), page.Cursor)

	got := make(chan int64, 10)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for d, err := range rs.Subscribe(sctx, eventstore.Filter{Cursor: eventstore.CursorAt(3)}) {
			if err != nil {
				close(got)
				return
			}
			if d.Event != nil {
				got <- d.Event.Position
			}
		}
	}()
	select {
	case p := <-got:
		t.Fatalf("delivered %d while the standby has nothing after 3", p)
	case <-time.After(300 * time.Millisecond):
	}
	_, err = admin.Exec(ctx, `SELECT pg_wal_replay_resume()`)
	require.NoError(t, err)
	for _, want := range []int64{4, 5} {
		select {
		case p, ok := <-got:
			require.True(t, ok, "the subscription ended")
			require.Equal(t, want, p)
		case <-time.After(30 * time.Second):
			t.Fatalf("position %d not delivered after the standby caught up", want)
		}
	}
}

// TestFailover: 8 writers append through a multi-host URL
// (target_session_attrs=read-write) while a durable consumer follows;
// the primary is stopped with -m immediate and the standby promoted; the
// writers and the consumer go on through the same URL. With synchronous
// replication every acknowledged append is on the new primary, at its
// position; nothing is duplicated; positions are dense; the consumer
// resumes from its checkpoint and handles every event of the new primary.
// With asynchronous replication the test reports how many acknowledged
// events were lost.
func TestFailover(t *testing.T) {
	t.Parallel()
	for _, sync := range []bool{true, false} {
		name := map[bool]string{true: "sync", false: "async"}[sync]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testFailover(t, sync)
		})
	}
}

type acked struct {
	agg     string
	version int64
	pos     int64
}

func testFailover(t *testing.T, syncRep bool) {
	ctx := context.Background()
	r := testdb.NewReplicated(t, syncRep)
	testdb.CreateDatabase(t, r.PrimaryURL, "store")
	both := testdb.WithDatabase(r.BothURL, "store")
	s0, err := eventstore.Open(ctx, both, nil)
	require.NoError(t, err)
	require.NoError(t, s0.Init(ctx))
	require.NoError(t, s0.Close())
	testdb.WaitForDatabase(t, testdb.WithDatabase(r.StandbyURL, "store"))

	// The consumer, through the multi-host URL, checkpoint every 100.
	cs, err := eventstore.Open(ctx, both, nil)
	require.NoError(t, err)
	defer cs.Close()
	var hmu sync.Mutex
	handled := map[int64]int{}
	c, err := consumer.New(cs, "failover", consumer.Func(func(_ context.Context, e *eventstore.StoredEvent) error {
		hmu.Lock()
		handled[e.Position]++
		hmu.Unlock()
		return nil
	}), &consumer.Options{CheckpointEvery: 100, CheckpointInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
	require.NoError(t, err)
	cctx, stopConsumer := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(cctx) }()

	var stop atomic.Bool
	var amu sync.Mutex
	var ack []acked
	var unknown, retried, notOnNew atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := eventstore.Open(ctx, both, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			agg := fmt.Sprintf("w%d", w)
			for v := int64(1); !stop.Load(); {
				e := eventstore.Event{AggregateID: agg, AggregateVersion: v, Type: "T", Payload: []byte(fmt.Sprintf(`{"w":%d,"v":%d}`, w, v))}
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				got, err := s.SaveEvent(actx, e)
				cancel()
				var ce *eventstore.ConflictError
				switch {
				case err == nil:
					amu.Lock()
					ack = append(ack, acked{agg, v, got.Position})
					amu.Unlock()
					v++
				case errors.Is(err, eventstore.ErrOutcomeUnknown):
					// Maybe stored: the next version goes on after it.
					unknown.Add(1)
					v++
				case errors.As(err, &ce):
					v++ // an earlier attempt in doubt was stored
				case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
					retried.Add(1)
					if strings.Contains(err.Error(), "failed over") {
						notOnNew.Add(1) // in doubt, resolved on the new primary: not written
					}
					time.Sleep(50 * time.Millisecond) // nothing written: the same version again
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	amu.Lock()
	before := len(ack)
	amu.Unlock()
	require.NoError(t, r.StopPrimary("immediate"))
	require.NoError(t, r.Promote())
	promoted := time.Now()
	// Writing goes on on the new primary.
	for {
		amu.Lock()
		n := len(ack)
		amu.Unlock()
		if n >= before+500 {
			break
		}
		require.Less(t, time.Since(promoted), 2*time.Minute, "the writers do not go on after the failover")
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	// What the new primary holds.
	np, err := eventstore.Open(ctx, testdb.WithDatabase(r.StandbyURL, "store"), nil)
	require.NoError(t, err)
	defer np.Close()
	d, err := np.Describe(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, d.EventCount, d.LastPosition, "positions dense")
	type key struct {
		agg string
		v   int64
	}
	stored := map[key]int64{}
	var pos int64
	for e, err := range np.Events(ctx, eventstore.Filter{}) {
		require.NoError(t, err)
		pos++
		require.Equal(t, pos, e.Position, "positions dense, in order")
		k := key{e.AggregateID, e.AggregateVersion}
		_, dup := stored[k]
		require.False(t, dup, "%v stored twice", k)
		stored[k] = e.Position
	}
	lost := 0
	for _, a := range ack {
		p, ok := stored[key{a.agg, a.version}]
		if !ok {
			lost++
			continue
		}
		if syncRep {
			require.Equal(t, a.pos, p, "%s v%d acknowledged at %d, stored at %d", a.agg, a.version, a.pos, p)
		}
	}
	t.Logf("%s replication: %d appends acknowledged (%d before the failover), %d lost; %d outcome unknown, %d in doubt resolved as not on the new primary, %d retried in all; %d events on the new primary",
		map[bool]string{true: "synchronous", false: "asynchronous"}[syncRep], len(ack), before, lost, unknown.Load(), notOnNew.Load(), retried.Load(), d.EventCount)
	if syncRep {
		require.Zero(t, lost, "acknowledged appends lost with synchronous replication")
	}

	// The consumer resumes on the new primary and handles every event
	// there.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		in, err := consumer.Get(ctx, np, "failover")
		require.NoError(t, err)
		if in.Checkpoint >= d.LastPosition {
			break
		}
		select {
		case err := <-ran:
			t.Fatalf("the consumer stopped: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "consumer at %d of %d", in.Checkpoint, d.LastPosition)
		time.Sleep(20 * time.Millisecond)
	}
	stopConsumer()
	require.NoError(t, <-ran)
	hmu.Lock()
	defer hmu.Unlock()
	for p := int64(1); p <= d.LastPosition; p++ {
		require.Positive(t, handled[p], "position %d not handled by the consumer", p)
	}
}

// TestReplicaLagsMetadataMigration: a standby that has not replayed the
// metadata migration (schema version 8) the primary ran is still read
// from, without metadata (it has no event with metadata yet), and with
// metadata once it has caught up.
func TestReplicaLagsMetadataMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testdb.NewReplicated(t, false)
	pu := testdb.CreateDatabase(t, r.PrimaryURL, "lagmigration")
	w, err := eventstore.Open(ctx, pu, nil)
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
	require.NoError(t, err)
	_, err = w.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: 1})
	require.NoError(t, err)
	_, err = w.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T", Payload: []byte(`{}`)})
	require.NoError(t, err)
	su := testdb.WithDatabase(r.StandbyURL, "lagmigration")
	testdb.WaitForDatabase(t, su)
	waitForStore(t, su)
	admin, err := pgx.Connect(ctx, su)
	require.NoError(t, err)
	defer admin.Close(ctx)
	require.Eventually(t, func() bool {
		var n int
		return admin.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n) == nil && n == 1
	}, time.Minute, 20*time.Millisecond)
	_, err = admin.Exec(ctx, `SELECT pg_wal_replay_pause()`)
	require.NoError(t, err)

	_, err = w.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
	require.NoError(t, err)
	rs, err := eventstore.Open(ctx, pu, &eventstore.Options{ReadURL: su})
	require.NoError(t, err)
	defer rs.Close()
	_, err = rs.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 2, Type: "T", Payload: []byte(`{}`), Metadata: []byte(`{"c":1}`)})
	require.NoError(t, err)
	page, err := rs.LoadEvents(ctx, eventstore.Filter{Limit: 10})
	require.NoError(t, err, "the standby without the metadata column is read")
	require.Len(t, page.Events, 1)
	require.Nil(t, page.Events[0].Metadata)
	var n int
	for _, err := range rs.Events(ctx, eventstore.Filter{}) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 1, n)

	_, err = admin.Exec(ctx, `SELECT pg_wal_replay_resume()`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		page, err := rs.LoadEvents(ctx, eventstore.Filter{Limit: 10})
		return err == nil && len(page.Events) == 2 && string(page.Events[1].Metadata) == `{"c":1}`
	}, time.Minute, 20*time.Millisecond)
}
