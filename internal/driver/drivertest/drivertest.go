// Package drivertest checks each operation of an engine's driver.Driver
// against its contract, directly, below the Store (as River's
// riverdrivertest does for its drivers). Every engine calls Exercise from
// its tests, next to conformance.Run, which checks the Store on top.
package drivertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// Exercise runs every check on fresh stores at the URLs newURL returns.
func Exercise(t *testing.T, newURL func(testing.TB) string) {
	t.Helper()
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, d driver.Driver)
	}{
		{"WriteState", testWriteState},
		{"WriteRollsBack", testWriteRollsBack},
		{"InsertEvents", func(t *testing.T, d driver.Driver) { testInsertEvents(t, d, 3) }},
		{"InsertEventsBatch", func(t *testing.T, d driver.Driver) { testInsertEvents(t, d, 200) }},
		{"LastVersions", testLastVersions},
		{"StagingAndSwap", testStagingAndSwap},
		{"DeleteEvents", testDeleteEvents},
		{"Secrets", testSecrets},
		{"Checkpoints", testCheckpoints},
		{"DeleteSnapshots", testDeleteSnapshots},
		{"Incremental", testIncremental},
		{"StageIncrementalRollsBack", testStageIncrementalRollsBack},
		{"Appender", testAppender},
		{"ConsumerRows", testConsumerRows},
		{"Leases", testLeases},
		{"Instances", testInstances},
		{"Parked", testParked},
		{"ConsumerTx", testConsumerTx},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t, newURL(t)))
		})
	}
	for _, tt := range readChecks {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t, newURL(t)))
		})
	}
}

// open returns the driver of an initialized, empty store.
func open(t *testing.T, url string) driver.Driver {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Init(ctx))
	return access.Driver(s)
}

var errTest = errors.New("drivertest: roll back")

// write runs fn in a Write transaction and fails the test on an error.
func write(t *testing.T, d driver.Driver, fn func(ctx context.Context, tx driver.Tx) error) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, d.Write(ctx, &driver.WriteParams{Bulk: true}, func(tx driver.Tx) error { return fn(ctx, tx) }))
}

// events returns n events of aggregate agg, versions from+1.., at
// positions after+1...
func events(agg string, from, after int64, n int) []estype.StoredEvent {
	out := make([]estype.StoredEvent, n)
	for i := range out {
		v := from + 1 + int64(i)
		out[i] = estype.StoredEvent{Position: after + 1 + int64(i), Event: estype.Event{
			AggregateID: agg, AggregateVersion: v, Type: "T", Timestamp: 1000 + v,
			Payload: json.RawMessage(fmt.Sprintf(`{"b":2,"a":[1, 2],"v":%d}`, v)),
		}}
	}
	return out
}

func state(t *testing.T, d driver.Driver) *driver.StoreState {
	t.Helper()
	st, err := d.ReadState(context.Background())
	require.NoError(t, err)
	return st
}

func stored(t *testing.T, d driver.Driver) []estype.StoredEvent {
	t.Helper()
	res, err := d.ListEvents(context.Background(), &driver.ListEventsParams{AfterTimestamp: -1, Limit: eventstore.MaxLimit})
	require.NoError(t, err)
	return res.Events
}

// Write's State is the row as locked at the start; SetFrozen and
// AdvanceState change the row, seen by the next transaction.
func testWriteState(t *testing.T, d driver.Driver) {
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		require.Equal(t, driver.State{}, tx.State())
		require.NoError(t, tx.SetFrozen(ctx, &driver.SetFrozenParams{Frozen: true, Reason: "maintenance"}))
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 7, Events: 0})
	})
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		require.Equal(t, driver.State{Frozen: true, FrozenReason: "maintenance", LastPosition: 7}, tx.State())
		return tx.SetFrozen(ctx, &driver.SetFrozenParams{})
	})
	st := state(t, d)
	require.False(t, st.Frozen)
	require.Empty(t, st.FrozenReason)
	require.EqualValues(t, 7, st.LastPosition)
}

// An error from fn rolls everything back and comes out of Write unchanged.
func testWriteRollsBack(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	err := d.Write(ctx, &driver.WriteParams{}, func(tx driver.Tx) error {
		k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("a", 0, 0, 2)})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		require.NoError(t, tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 2, Events: 2}))
		require.NoError(t, tx.SetFrozen(ctx, &driver.SetFrozenParams{Frozen: true, Reason: "x"}))
		return errTest
	})
	require.Same(t, errTest, err)
	st := state(t, d)
	require.Zero(t, st.LastPosition)
	require.Zero(t, st.EventCount)
	require.False(t, st.Frozen)
	require.Empty(t, stored(t, d))
}

// InsertEvents writes the events at their positions, payload bytes as
// given; a call with a stored or repeated pair writes nothing of itself,
// reports the first such event, and the transaction goes on.
func testInsertEvents(t *testing.T, d driver.Driver, n int) {
	first := events("a", 0, 0, n)
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: first})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: int64(n), Events: int64(n)})
	})
	require.Equal(t, first, stored(t, d))
	st := state(t, d)
	require.EqualValues(t, n, st.LastPosition)
	require.EqualValues(t, n, st.EventCount)

	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		// Fresh events, then one whose pair is stored.
		bad := append(events("b", 0, int64(n), n), events("a", int64(n-1), int64(2*n), 1)...)
		k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: bad})
		require.NoError(t, err)
		require.Equal(t, n, k, "the event whose pair is stored")
		// A pair repeated within the call.
		rep := append(events("c", 0, int64(n), n), events("c", 0, int64(2*n), 1)...)
		k, err = tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: rep})
		require.NoError(t, err)
		require.Equal(t, n, k, "the repeated pair")
		// The transaction is still usable: the same positions are free.
		k, err = tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("d", 0, int64(n), n)})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: int64(2 * n), Events: int64(n)})
	})
	got := stored(t, d)
	require.Len(t, got, 2*n)
	require.Equal(t, "d", got[n].AggregateID)
	require.EqualValues(t, 2*n, state(t, d).EventCount)
}

// LastVersions reads each aggregate's highest version, not its count or its
// latest position, in the order asked, 0 for an unknown one or one only in
// staging, and sees the transaction's own inserts.
func testLastVersions(t *testing.T, d driver.Driver) {
	gap := events("gap", 0, 3, 2)
	gap[0].AggregateVersion, gap[1].AggregateVersion = 7, 2 // highest first in position order
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		for _, p := range []*driver.InsertEventsParams{
			{Events: events("a", 0, 0, 3)},
			{Events: gap},
			{Table: driver.Staging, Events: events("staged", 0, 0, 1)},
		} {
			k, err := tx.InsertEvents(ctx, p)
			require.NoError(t, err)
			require.Equal(t, -1, k)
		}
		vs, err := tx.LastVersions(ctx, []string{"gap", "none", "a", "staged", "a"})
		require.NoError(t, err)
		require.Equal(t, []int64{7, 0, 3, 0, 3}, vs, "inside the transaction")
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 5, Events: 5})
	})
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		vs, err := tx.LastVersions(ctx, []string{"a", "gap"})
		require.NoError(t, err)
		require.Equal(t, []int64{3, 7}, vs, "after commit")
		vs, err = tx.LastVersions(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, vs)
		return nil
	})
}

// Staging holds events apart from the store's; SwapStaging makes them the
// store's events and state; ClearStaging empties it.
func testStagingAndSwap(t *testing.T, d driver.Driver) {
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		if _, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("old", 0, 0, 5)}); err != nil {
			return err
		}
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 5, Events: 5})
	})
	staged := events("new", 0, 0, 3)
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Staging, Events: staged})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		k, err = tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Staging, Events: events("new", 2, 3, 1)})
		require.NoError(t, err)
		require.Equal(t, 0, k, "the pair is staged already")
		// A pair of the store's events is no conflict in staging.
		k, err = tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Staging, Events: events("old", 0, 3, 1)})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		return nil
	})
	require.Len(t, stored(t, d), 5, "staging is not the store's events")
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.SwapStaging(ctx) })
	got := stored(t, d)
	require.Len(t, got, 4)
	require.Equal(t, staged, got[:3])
	st := state(t, d)
	require.EqualValues(t, 4, st.LastPosition)
	require.EqualValues(t, 4, st.EventCount)
	// Staging is empty after the swap; ClearStaging empties it too.
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		if _, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Staging, Events: events("x", 0, 0, 2)}); err != nil {
			return err
		}
		return tx.ClearStaging(ctx)
	})
	rows, err := d.CountRows(context.Background())
	require.NoError(t, err)
	require.Zero(t, rows.StagedImports)
}

func testDeleteEvents(t *testing.T, d driver.Driver) {
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		if _, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("a", 0, 0, 4)}); err != nil {
			return err
		}
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 4, Events: 4})
	})
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.DeleteEvents(ctx) })
	require.Empty(t, stored(t, d))
	st := state(t, d)
	require.Zero(t, st.LastPosition)
	require.Zero(t, st.EventCount)
}

// Secrets keep their idx; an id or idx in use, or repeated, refuses the
// call (nothing of it written) and the transaction goes on.
func testSecrets(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	v := func(s string) *string { return &s }
	last, err := d.LastSecret(ctx)
	require.NoError(t, err)
	require.Nil(t, last)
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		idx, err := tx.MaxSecretIdx(ctx)
		require.NoError(t, err)
		require.Zero(t, idx)
		k, err := tx.InsertSecrets(ctx, []estype.Secret{{Idx: 1, ID: "a", Secret: v("x")}, {Idx: 5, ID: "b"}})
		require.NoError(t, err)
		require.Equal(t, -1, k)
		idx, err = tx.MaxSecretIdx(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 5, idx)
		for _, tt := range []struct {
			secrets []estype.Secret
			want    int
		}{
			{[]estype.Secret{{Idx: 6, ID: "c"}, {Idx: 7, ID: "a"}}, 1},   // id used
			{[]estype.Secret{{Idx: 5, ID: "d"}}, 0},                      // idx used
			{[]estype.Secret{{Idx: 8, ID: "e"}, {Idx: 9, ID: "e"}}, 1},   // id repeated
			{[]estype.Secret{{Idx: 10, ID: "f"}, {Idx: 10, ID: "g"}}, 1}, // idx repeated
		} {
			k, err := tx.InsertSecrets(ctx, tt.secrets)
			require.NoError(t, err)
			require.Equal(t, tt.want, k, "%v", tt.secrets)
		}
		deleted, err := tx.TombstoneSecret(ctx, "a")
		require.NoError(t, err)
		require.True(t, deleted)
		for _, id := range []string{"a", "b", "missing"} {
			deleted, err = tx.TombstoneSecret(ctx, id)
			require.NoError(t, err)
			require.False(t, deleted, id)
		}
		return tx.AddSecretCounts(ctx, &driver.AddSecretCountsParams{Secrets: 2, Deleted: 2})
	})
	last, err = d.LastSecret(ctx)
	require.NoError(t, err)
	require.Equal(t, &estype.Secret{Idx: 5, ID: "b"}, last)
	list, err := d.ListSecrets(ctx, &driver.ListSecretsParams{IncludeDeleted: true, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []estype.Secret{{Idx: 1, ID: "a"}, {Idx: 5, ID: "b"}}, list, "nothing of the refused calls; a is a tombstone")
	st := state(t, d)
	require.EqualValues(t, 2, st.SecretCount)
	require.EqualValues(t, 2, st.DeletedSecretCount)
}

func testCheckpoints(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	cp := estype.ImportCheckpoint{SourceID: "s", Kind: "events", Mode: "manual", ByteOffset: 10, Line: 2, Events: 2, LastPosition: 2, HashState: []byte{1, 2}, UpdatedAt: 99}
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.UpsertCheckpoint(ctx, &cp) })
	cp.ByteOffset, cp.Line, cp.Done, cp.Froze = 20, 3, true, true
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.UpsertCheckpoint(ctx, &cp) })
	got, err := d.Checkpoint(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, &cp, got)
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.DeleteCheckpoint(ctx, "s") })
	got, err = d.Checkpoint(ctx, "s")
	require.NoError(t, err)
	require.Nil(t, got)
}

func testDeleteSnapshots(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		require.NoError(t, d.PutSnapshot(ctx, &driver.Snapshot{Key: k, Content: []byte(k)}))
	}
	write(t, d, func(ctx context.Context, tx driver.Tx) error { return tx.DeleteSnapshots(ctx) })
	list, err := d.ListSnapshots(ctx, &driver.ListSnapshotsParams{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, list)
}

// The classes of ClassifyIncremental, and AppendIncremental's positions and
// versions.
func testIncremental(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		if _, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: events("a", 0, 0, 2)}); err != nil {
			return err
		}
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 2, Events: 2})
	})
	newest := events("a", 0, 0, 2)[1].Timestamp
	stored := events("a", 0, 0, 1)[0].Event
	ev := func(agg string, ts int64, payload string) estype.Event {
		return estype.Event{AggregateID: agg, Type: "T", Timestamp: ts, Payload: json.RawMessage(payload)}
	}
	push := []estype.Event{
		ev("b", newest+5, `{"n":2}`),
		ev("a", newest+1, `{"n":1}`),
		ev("a", newest+1, `{"n":1}`), // repeats the staged one above
		stored,                       // a stored event
		ev("c", newest-1, `{}`),      // older than the newest stored
		ev("a", newest+2, `{"n":3}`),
	}
	push[3].AggregateVersion = 0
	require.NoError(t, d.BeginIncremental(ctx, &driver.BeginIncrementalParams{ID: "i1", Now: 1}))
	found, err := d.PushIncremental(ctx, &driver.PushIncrementalParams{ID: "i1", Events: push, Now: 2})
	require.NoError(t, err)
	require.True(t, found)
	found, err = d.PushIncremental(ctx, &driver.PushIncrementalParams{ID: "nope", Events: push[:1], Now: 2})
	require.NoError(t, err)
	require.False(t, found)
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		found, err := tx.LockIncremental(ctx, "nope")
		require.NoError(t, err)
		require.False(t, found)
		found, err = tx.LockIncremental(ctx, "i1")
		require.NoError(t, err)
		require.True(t, found)
		w, err := tx.ClassifyIncremental(ctx, "i1")
		require.NoError(t, err)
		require.Equal(t, &driver.IncrementalWork{Fresh: 3, Duplicates: 2, Older: 1, NewestTimestamp: newest, OldestAggregateID: "c", OldestTimestamp: newest - 1}, w)
		if err := tx.AppendIncremental(ctx, &driver.AppendIncrementalParams{After: 2}); err != nil {
			return err
		}
		if err := tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: 5, Events: 3}); err != nil {
			return err
		}
		return tx.DeleteIncremental(ctx, "i1")
	})
	got := storedAfter(t, d, 2)
	type pv struct {
		pos     int64
		agg     string
		version int64
	}
	var order []pv
	for _, e := range got {
		order = append(order, pv{e.Position, e.AggregateID, e.AggregateVersion})
	}
	// (timestamp, push order); versions continue each aggregate's.
	require.Equal(t, []pv{{3, "a", 3}, {4, "a", 4}, {5, "b", 1}}, order)
	list, err := d.ListIncremental(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func storedAfter(t *testing.T, d driver.Driver, after int64) []estype.StoredEvent {
	t.Helper()
	res, err := d.ListEvents(context.Background(), &driver.ListEventsParams{After: after, AfterTimestamp: -1, Limit: 100})
	require.NoError(t, err)
	return res.Events
}

// StageIncremental's import lives and dies with its transaction.
func testStageIncrementalRollsBack(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	err := d.Write(ctx, &driver.WriteParams{Bulk: true}, func(tx driver.Tx) error {
		p := &driver.PushIncrementalParams{ID: "dry", Now: 1, Events: []estype.Event{{AggregateID: "a", Type: "T", Timestamp: 5, Payload: json.RawMessage(`{}`)}}}
		require.NoError(t, tx.StageIncremental(ctx, p))
		found, err := tx.LockIncremental(ctx, "dry")
		require.NoError(t, err)
		require.True(t, found)
		w, err := tx.ClassifyIncremental(ctx, "dry")
		require.NoError(t, err)
		require.EqualValues(t, 1, w.Fresh)
		return errTest
	})
	require.Same(t, errTest, err)
	list, err := d.ListIncremental(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

// An Appender keeps AppendParams' contract.
func testAppender(t *testing.T, d driver.Driver) {
	ap, ok := d.(driver.Appender)
	if !ok {
		t.Skipf("%s appends through Write", d.Name())
	}
	ctx := context.Background()
	req := func(agg string, n int) driver.AppendRequest {
		var r driver.AppendRequest
		for _, e := range events(agg, 0, 0, n) {
			r.Events = append(r.Events, e.Event)
		}
		return r
	}
	res, err := ap.Append(ctx, &driver.AppendParams{Requests: []driver.AppendRequest{req("a", 2), req("b", 1)}})
	require.NoError(t, err)
	require.Equal(t, &driver.AppendResult{FirstPosition: 1}, res)
	res, err = ap.Append(ctx, &driver.AppendParams{Requests: []driver.AppendRequest{req("c", 1), req("a", 1), req("d", 2)}})
	require.NoError(t, err)
	require.Equal(t, &driver.AppendResult{FirstPosition: 4, Conflicts: []driver.AppendConflict{{Request: 1, AggregateID: "a", AggregateVersion: 1}}}, res)
	got := stored(t, d)
	require.Len(t, got, 6)
	require.Equal(t, "d", got[5].AggregateID)
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		return tx.SetFrozen(ctx, &driver.SetFrozenParams{Frozen: true})
	})
	res, err = ap.Append(ctx, &driver.AppendParams{Requests: []driver.AppendRequest{req("e", 1)}})
	require.NoError(t, err)
	require.True(t, res.Frozen)
	require.Len(t, stored(t, d), 6)
}
