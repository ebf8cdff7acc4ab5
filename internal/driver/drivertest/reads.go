package drivertest

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// The pool reads and lookups, one snapshot reads (BeginRead, ScanEvents),
// the schema operations and the wake-ups: every Driver method the Store
// calls, checked here directly.
var readChecks = []struct {
	name string
	run  func(t *testing.T, d driver.Driver)
}{
	{"ReadTx", testReadTx},
	{"LatestEvent", testLatestEvent},
	{"FirstStoredPair", testFirstStoredPair},
	{"Snapshots", testSnapshots},
	{"GetSecret", testGetSecret},
	{"ListCheckpoints", testListCheckpoints},
	{"RollbackIncremental", testRollbackIncremental},
	{"ReadStats", testReadStats},
	{"Migrate", testMigrate},
	{"DropStore", testDropStore},
	{"Listen", testListen},
}

// insert writes events at their positions and advances the state row.
func insert(t *testing.T, d driver.Driver, evs []estype.StoredEvent) {
	t.Helper()
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Events: evs})
		if err != nil {
			return err
		}
		require.Equal(t, -1, k)
		return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: evs[len(evs)-1].Position, Events: int64(len(evs))})
	})
}

// A ReadTx reads one snapshot: ListEvents, ScanEvents and ReadState do not
// see what commits after its first read. ScanEvents hands the events one at
// a time, stops at fn's error and returns it unchanged.
func testReadTx(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	want := events("a", 0, 0, 3)
	insert(t, d, want)
	rtx, err := d.BeginRead(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, rtx.Close(ctx)) }()
	st, err := rtx.ReadState(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, st.LastPosition)

	insert(t, d, events("a", 3, 3, 1)) // after the snapshot's first read

	res, err := rtx.ListEvents(ctx, &driver.ListEventsParams{AfterTimestamp: -1, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, want, res.Events)
	require.EqualValues(t, 3, res.LastPosition)
	var scanned []estype.StoredEvent
	last, err := rtx.ScanEvents(ctx, &driver.ListEventsParams{After: 1, AfterTimestamp: -1, Limit: 10}, func(e *estype.StoredEvent) error {
		c := *e
		c.Payload = slices.Clone(e.Payload) // valid only during the call
		scanned = append(scanned, c)
		return nil
	})
	require.NoError(t, err)
	require.EqualValues(t, 3, last)
	require.Equal(t, want[1:], scanned)
	errStop := errors.New("stop")
	calls := 0
	_, err = rtx.ScanEvents(ctx, &driver.ListEventsParams{AfterTimestamp: -1, Limit: 10}, func(*estype.StoredEvent) error {
		calls++
		return errStop
	})
	require.ErrorIs(t, err, errStop)
	require.Equal(t, 1, calls)
	st, err = rtx.ReadState(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, st.LastPosition)

	require.Len(t, stored(t, d), 4) // the pool sees the later commit
}

// LatestEvent: the matching event with the highest position, or nil.
func testLatestEvent(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	e, err := d.LatestEvent(ctx, &driver.LatestEventParams{})
	require.NoError(t, err)
	require.Nil(t, e)
	evs := append(events("a", 0, 0, 2), events("b", 0, 2, 1)...)
	evs[2].Type = "U"
	insert(t, d, evs)
	for _, c := range []struct {
		p    driver.LatestEventParams
		want int // index in evs, -1: none
	}{
		{driver.LatestEventParams{}, 2},
		{driver.LatestEventParams{AggregateIDs: []string{"a"}}, 1},
		{driver.LatestEventParams{EventTypes: []string{"T"}}, 1},
		{driver.LatestEventParams{AggregateIDs: []string{"a", "b"}, EventTypes: []string{"U"}}, 2},
		{driver.LatestEventParams{AggregateIDs: []string{"b"}, EventTypes: []string{"T"}}, -1},
	} {
		e, err := d.LatestEvent(ctx, &c.p)
		require.NoError(t, err)
		if c.want < 0 {
			require.Nil(t, e, "%+v", c.p)
			continue
		}
		require.Equal(t, &evs[c.want], e, "%+v", c.p)
	}
}

// FirstStoredPair: the index of the first event whose (aggregate id,
// version) is stored, whatever its position, or -1.
func testFirstStoredPair(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	insert(t, d, events("a", 0, 0, 2))
	probe := append(events("b", 0, 10, 1), events("a", 1, 11, 1)...) // b v1 (new), a v2 (stored)
	probe = append(probe, events("a", 0, 12, 1)...)                  // a v1 (stored)
	i, err := d.FirstStoredPair(ctx, probe)
	require.NoError(t, err)
	require.Equal(t, 1, i)
	i, err = d.FirstStoredPair(ctx, append(events("b", 0, 10, 1), events("a", 2, 11, 1)...))
	require.NoError(t, err)
	require.Equal(t, -1, i)
}

// Snapshots: put replaces, get finds the exact key, list pages by key,
// delete removes one key (and succeeds on a missing one); content is kept
// byte for byte.
func testSnapshots(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	_, found, err := d.GetSnapshot(ctx, "k1")
	require.NoError(t, err)
	require.False(t, found)
	binary := []byte{0, 1, 0xff, '\n', 0}
	require.NoError(t, d.PutSnapshot(ctx, &driver.Snapshot{Key: "k1", Content: []byte("v1")}))
	require.NoError(t, d.PutSnapshot(ctx, &driver.Snapshot{Key: "k1", Content: binary}))
	require.NoError(t, d.PutSnapshot(ctx, &driver.Snapshot{Key: "k2", Content: []byte("v2")}))
	got, found, err := d.GetSnapshot(ctx, "k1")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, binary, got)
	_, found, err = d.GetSnapshot(ctx, "k")
	require.NoError(t, err)
	require.False(t, found, "a prefix of a key is not the key")
	list, err := d.ListSnapshots(ctx, &driver.ListSnapshotsParams{AfterKey: "k1", Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []driver.Snapshot{{Key: "k2", Content: []byte("v2")}}, list)
	require.NoError(t, d.DeleteSnapshot(ctx, "k1"))
	require.NoError(t, d.DeleteSnapshot(ctx, "k1"))
	_, found, err = d.GetSnapshot(ctx, "k1")
	require.NoError(t, err)
	require.False(t, found)
	_, found, err = d.GetSnapshot(ctx, "k2")
	require.NoError(t, err)
	require.True(t, found)
}

// GetSecret finds live secrets only: a tombstone or an unknown id is not
// found.
func testGetSecret(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	v := "value-1"
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		k, err := tx.InsertSecrets(ctx, []estype.Secret{{Idx: 1, ID: "s1", Secret: &v}, {Idx: 2, ID: "s2"}})
		require.Equal(t, -1, k)
		return err
	})
	got, found, err := d.GetSecret(ctx, "s1")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, v, got)
	for _, id := range []string{"s2", "nope"} {
		_, found, err := d.GetSecret(ctx, id)
		require.NoError(t, err)
		require.False(t, found, id)
	}
}

// ListCheckpoints returns every checkpoint, ordered by source id.
func testListCheckpoints(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	list, err := d.ListCheckpoints(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	b := estype.ImportCheckpoint{SourceID: "b", Kind: estype.CheckpointSecrets, Mode: estype.CheckpointManual, ByteOffset: 5, Line: 1, Events: 1, HashState: []byte{9}, UpdatedAt: 7}
	a := estype.ImportCheckpoint{SourceID: "a", Kind: estype.CheckpointEvents, Mode: estype.CheckpointAutoStaged, Froze: true, BasePosition: 4, ByteOffset: 10, Line: 2, Events: 2, LastPosition: 6, HashState: []byte{1, 2}, Done: true, UpdatedAt: 8}
	write(t, d, func(ctx context.Context, tx driver.Tx) error {
		if err := tx.UpsertCheckpoint(ctx, &b); err != nil {
			return err
		}
		return tx.UpsertCheckpoint(ctx, &a)
	})
	list, err = d.ListCheckpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, []estype.ImportCheckpoint{a, b}, list)
}

// RollbackIncremental deletes an open import and its staged events; an
// import that is not open is not found.
func testRollbackIncremental(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	require.NoError(t, d.BeginIncremental(ctx, &driver.BeginIncrementalParams{ID: "i1", Now: 1}))
	push := []estype.Event{events("a", 0, 0, 1)[0].Event, events("b", 0, 0, 1)[0].Event}
	found, err := d.PushIncremental(ctx, &driver.PushIncrementalParams{ID: "i1", Events: push, Now: 2})
	require.NoError(t, err)
	require.True(t, found)
	list, err := d.ListIncremental(ctx)
	require.NoError(t, err)
	require.Equal(t, []estype.IncrementalImportInfo{{ID: "i1", Events: 2, CreatedAt: 1, UpdatedAt: 2}}, list)
	found, err = d.RollbackIncremental(ctx, "i1")
	require.NoError(t, err)
	require.True(t, found)
	for _, id := range []string{"i1", "nope"} {
		found, err = d.RollbackIncremental(ctx, id)
		require.NoError(t, err)
		require.False(t, found, id)
	}
	list, err = d.ListIncremental(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	// Its staged events are gone: a new import of the same id starts empty.
	require.NoError(t, d.BeginIncremental(ctx, &driver.BeginIncrementalParams{ID: "i1", Now: 3}))
	list, err = d.ListIncremental(ctx)
	require.NoError(t, err)
	require.Equal(t, []estype.IncrementalImportInfo{{ID: "i1", Events: 0, CreatedAt: 3, UpdatedAt: 3}}, list)
}

// ReadStats: the first position, the aggregates (counted, or as the writes
// keep them) and the snapshots.
func testReadStats(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	for _, counted := range []bool{false, true} {
		st, err := d.ReadStats(ctx, &driver.ReadStatsParams{Counted: counted})
		require.NoError(t, err)
		require.Equal(t, &driver.StoreStats{}, st, "counted %v", counted)
	}
	insert(t, d, append(events("a", 0, 0, 2), events("b", 0, 2, 1)...))
	require.NoError(t, d.PutSnapshot(ctx, &driver.Snapshot{Key: "k", Content: []byte("x")}))
	for _, counted := range []bool{false, true} {
		st, err := d.ReadStats(ctx, &driver.ReadStatsParams{Counted: counted})
		require.NoError(t, err)
		require.Equal(t, &driver.StoreStats{FirstPosition: 1, AggregateCount: 2, SnapshotCount: 1}, st, "counted %v", counted)
	}
	rc, err := d.CountRows(ctx)
	require.NoError(t, err)
	require.Equal(t, &driver.RowCounts{Events: 3, MinPosition: 1, MaxPosition: 3, Aggregates: 2}, rc)
}

// Migrate reports, reverts, re-applies and forces the schema version.
func testMigrate(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	migrate := func(p driver.MigrateParams) *estype.SchemaStatus {
		t.Helper()
		st, err := d.Migrate(ctx, &p)
		require.NoError(t, err)
		return st
	}
	st := migrate(driver.MigrateParams{Op: estype.MigrateStatus})
	latest := st.Latest
	require.Positive(t, latest)
	require.Equal(t, &estype.SchemaStatus{Version: latest, Latest: latest}, st)
	require.Equal(t, latest-1, migrate(driver.MigrateParams{Op: estype.MigrateDown, Steps: 1}).Version)
	require.Equal(t, latest-1, migrate(driver.MigrateParams{Op: estype.MigrateStatus}).Version)
	require.Equal(t, latest, migrate(driver.MigrateParams{Op: estype.MigrateUp}).Version)
	require.Equal(t, latest, migrate(driver.MigrateParams{Op: estype.MigrateUp}).Version, "up on a current schema changes nothing")
	require.Equal(t, &estype.SchemaStatus{Version: latest, Latest: latest}, migrate(driver.MigrateParams{Op: estype.MigrateForce, Version: latest}))
}

// DropStore removes the store (version 0 after it), succeeds when there is
// none, and Init can create it again.
func testDropStore(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	insert(t, d, events("a", 0, 0, 1))
	require.NoError(t, d.DropStore(ctx))
	st, err := d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateStatus})
	require.NoError(t, err)
	require.Zero(t, st.Version)
	require.NoError(t, d.DropStore(ctx))
	st, err = d.Migrate(ctx, &driver.MigrateParams{Op: estype.MigrateUp})
	require.NoError(t, err)
	require.Equal(t, st.Latest, st.Version)
	require.Empty(t, stored(t, d))
}

// A Listener wakes after a commit of events and returns when its context
// ends. (Without a Listener the Store polls; nothing to check.)
func testListen(t *testing.T, d driver.Driver) {
	l, ok := d.(driver.Listener)
	if !ok {
		t.Skipf("%s has no Listener", d.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wakes atomic.Int64
	woken := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Listen(ctx, func() {
			wakes.Add(1)
			select {
			case woken <- struct{}{}:
			default:
			}
		})
	}()
	// A deadline only so that a missing wake-up fails instead of hanging.
	wait := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case err := <-done:
			t.Fatalf("Listen returned before %s: %v", what, err)
		case <-time.After(time.Minute):
			t.Fatalf("no wake-up after %s", what)
		}
	}
	// Listen wakes once when it is listening; then each commit must be
	// followed by a wake-up (hints: one may also come at other times).
	wait("the start")
	for i := range int64(3) {
		select {
		case <-woken:
		default:
		}
		insert(t, d, events("a", i, i, 1))
		wait("a commit")
	}
	require.GreaterOrEqual(t, wakes.Load(), int64(4))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			require.ErrorIs(t, err, context.Canceled)
		}
	case <-time.After(time.Minute):
		t.Fatal("Listen did not return after its context ended")
	}
}
