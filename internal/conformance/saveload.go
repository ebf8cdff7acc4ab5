package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

func runSaveLoad(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("SaveAndLoadInPages", func(t *testing.T) {
		// reSolve: "should save all passed events" and "saved events and
		// corresponding cursors must match the subsequent loadEvents result".
		t.Parallel()
		clk := &Clock{MS: 1_700_000_000_000}
		s, _ := NewStore(t, h, &eventstore.Options{NowFunc: clk.Now})
		var saved []eventstore.StoredEvent
		for i := range 512 {
			e := testEvent(i)
			e.Type = fmt.Sprintf("EVENT_%d", i%4+1)
			clk.MS++
			se, err := s.SaveEvent(ctx, e)
			require.NoError(t, err)
			require.Equal(t, int64(i+1), se.Position, "positions are dense from 1")
			require.Equal(t, e.AggregateID, se.AggregateID)
			require.Equal(t, e.Type, se.Type)
			require.JSONEq(t, string(e.Payload), string(se.Payload))
			require.Equal(t, clk.MS, se.Timestamp, "timestamp = max(now, given)")
			saved = append(saved, se)
		}
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 512, d.EventCount)
		require.EqualValues(t, 512, d.LastPosition)
		require.Equal(t, saved[511].Cursor(), d.Cursor)
		require.Equal(t, clk.MS, *d.LastEventTimestamp)

		var cursor eventstore.Cursor
		for i := 0; i < 512; i += 100 {
			page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: cursor, Limit: 100})
			require.NoError(t, err)
			end := min(i+100, 512)
			require.Equal(t, saved[i:end], page.Events)
			require.Equal(t, saved[end-1].Cursor(), page.Cursor, "the page cursor is the saveEvent cursor of its last event")
			cursor = page.Cursor
		}
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: cursor, Limit: 100})
		require.NoError(t, err)
		require.Empty(t, page.Events)
		require.Equal(t, cursor, page.Cursor, "an empty page keeps the cursor")
	})

	t.Run("TimestampIsMaxOfNowAndGiven", func(t *testing.T) {
		t.Parallel()
		clk := &Clock{MS: 5_000}
		s, _ := NewStore(t, h, &eventstore.Options{NowFunc: clk.Now})
		e := testEvent(0)
		e.Timestamp = 9_000 // in the future: kept
		se, err := s.SaveEvent(ctx, e)
		require.NoError(t, err)
		require.EqualValues(t, 9_000, se.Timestamp)
		e = testEvent(1)
		e.Timestamp = 1 // in the past: raised to now
		se, err = s.SaveEvent(ctx, e)
		require.NoError(t, err)
		require.EqualValues(t, 5_000, se.Timestamp)
	})

	t.Run("ConcurrencyConflict", func(t *testing.T) {
		// reSolve: "should throw ConcurrentError when saving event with the
		// same aggregateVersion". Identical content is still a conflict: two
		// honest deposits of 10 at the same version look identical.
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		_, err = s.SaveEvent(ctx, testEvent(0))
		require.ErrorIs(t, err, eventstore.ErrConflict)
		var ce *eventstore.ConflictError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "aggregateId", ce.AggregateID)
		require.EqualValues(t, 1, ce.AggregateVersion)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, d.EventCount)
	})

	t.Run("SaveEventsIsAtomic", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		out, err := s.SaveEvents(ctx, []eventstore.Event{
			{AggregateID: "a", AggregateVersion: 1, Type: "T"},
			{AggregateID: "b", AggregateVersion: 1, Type: "T"},
			{AggregateID: "a", AggregateVersion: 2, Type: "T"},
		})
		require.NoError(t, err)
		require.Len(t, out, 3)
		for i, e := range out {
			require.EqualValues(t, i+1, e.Position)
			require.Equal(t, "null", string(e.Payload), "a nil payload is stored as null")
		}
		// b/1 conflicts, so c/1 must not be stored either.
		_, err = s.SaveEvents(ctx, []eventstore.Event{
			{AggregateID: "c", AggregateVersion: 1, Type: "T"},
			{AggregateID: "b", AggregateVersion: 1, Type: "T"},
		})
		var ce *eventstore.ConflictError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "b", ce.AggregateID)
		page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{"c"}, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, page.Events, "a failed SaveEvents stores nothing")
		// Positions stay dense after a failed call.
		e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "c", AggregateVersion: 1, Type: "T"})
		require.NoError(t, err)
		require.EqualValues(t, 4, e.Position)
		out, err = s.SaveEvents(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, out)
	})

	t.Run("CursorErrors", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		_, err := s.SaveEvents(ctx, []eventstore.Event{testEvent(0), testEvent(1)})
		require.NoError(t, err)
		_, err = s.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(2), Limit: 1})
		require.NoError(t, err, "the end cursor is valid")
		_, err = s.LoadEvents(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(3), Limit: 1})
		var be *eventstore.CursorBeyondEndError
		require.ErrorAs(t, err, &be)
		require.ErrorIs(t, err, eventstore.ErrCursorBeyondEnd)
		require.EqualValues(t, 3, be.Position)
		require.EqualValues(t, 2, be.End)
		n := 0
		for _, err := range s.Events(ctx, eventstore.Filter{Cursor: eventstore.CursorAt(99)}) {
			require.ErrorIs(t, err, eventstore.ErrCursorBeyondEnd)
			n++
		}
		require.Equal(t, 1, n)
		for _, bad := range []eventstore.Cursor{"x", "AQAAAAAAAAA", "AQAAAAAAAAAA=", "AQAAAAAAAAA+", "AgAAAAAAAAAA", " AQAAAAAAAAA"} {
			_, err = s.LoadEvents(ctx, eventstore.Filter{Cursor: bad, Limit: 1})
			require.ErrorIs(t, err, eventstore.ErrInvalidCursor, "cursor %q", bad)
			require.ErrorIs(t, err, eventstore.ErrInvalidFilter, "cursor %q", bad)
		}
	})

	t.Run("NextCursor", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		saved, err := s.SaveEvents(ctx, []eventstore.Event{testEvent(0), testEvent(1), testEvent(2)})
		require.NoError(t, err)
		c, err := eventstore.NextCursor("", nil)
		require.NoError(t, err)
		require.Equal(t, eventstore.CursorAt(0), c)
		// Order-independent and never moves backwards.
		c1, err := eventstore.NextCursor("", []eventstore.StoredEvent{saved[2], saved[0]})
		require.NoError(t, err)
		require.Equal(t, saved[2].Cursor(), c1)
		c2, err := eventstore.NextCursor(c1, saved[:1])
		require.NoError(t, err)
		require.Equal(t, c1, c2)
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: saved[0].Cursor(), Limit: 10})
		require.NoError(t, err)
		require.Equal(t, saved[1:], page.Events)
		_, err = eventstore.NextCursor("garbage", nil)
		require.ErrorIs(t, err, eventstore.ErrInvalidCursor)
	})

	t.Run("TimeRange", func(t *testing.T) {
		// reSolve: "should load events by timestamp", in (timestamp,
		// position) order, bounds inclusive, no cursor.
		t.Parallel()
		clk := &Clock{MS: 0}
		s, _ := NewStore(t, h, &eventstore.Options{NowFunc: clk.Now})
		var saved []eventstore.StoredEvent
		for i := range 90 {
			e := testEvent(i)
			e.AggregateID = fmt.Sprintf("agg-%d", i%3)
			e.AggregateVersion = int64(i/3 + 1)
			e.Type = fmt.Sprintf("T%d", i%2)
			// Timestamps out of position order: 3 events per ms, reversed.
			e.Timestamp = int64(1000 + (89-i)/3)
			se, err := s.SaveEvent(ctx, e)
			require.NoError(t, err)
			saved = append(saved, se)
		}
		byTime := append([]eventstore.StoredEvent(nil), saved...)
		sort.SliceStable(byTime, func(i, j int) bool {
			if byTime[i].Timestamp != byTime[j].Timestamp {
				return byTime[i].Timestamp < byTime[j].Timestamp
			}
			return byTime[i].Position < byTime[j].Position
		})
		page, err := s.LoadEvents(ctx, eventstore.Filter{StartTime: ptr[int64](1000), FinishTime: ptr[int64](1009), Limit: 1000})
		require.NoError(t, err)
		require.Equal(t, byTime[:30], page.Events)
		require.Empty(t, page.Cursor, "time-range reads have no cursor")
		page, err = s.LoadEvents(ctx, eventstore.Filter{StartTime: ptr[int64](1020), Limit: 1000})
		require.NoError(t, err)
		require.Equal(t, byTime[60:], page.Events)
		page, err = s.LoadEvents(ctx, eventstore.Filter{FinishTime: ptr[int64](1000), EventTypes: []string{"T1"}, Limit: 1000})
		require.NoError(t, err)
		for _, e := range page.Events {
			require.EqualValues(t, 1000, e.Timestamp)
			require.Equal(t, "T1", e.Type)
		}
		require.NotEmpty(t, page.Events)
		// Events pages through a time range with a (timestamp, position) keyset.
		var got []eventstore.StoredEvent
		for e, err := range s.Events(ctx, eventstore.Filter{StartTime: ptr[int64](1005), FinishTime: ptr[int64](1024), Limit: 7}) {
			require.NoError(t, err)
			got = append(got, e)
		}
		require.Equal(t, byTime[15:75], got)
	})

	t.Run("EventsIterator", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		var saved []eventstore.StoredEvent
		for i := range 250 {
			se, err := s.SaveEvent(ctx, testEvent(i))
			require.NoError(t, err)
			saved = append(saved, se)
		}
		var got []eventstore.StoredEvent
		for e, err := range s.Events(ctx, eventstore.Filter{Limit: 40}) {
			require.NoError(t, err)
			got = append(got, e)
		}
		require.Equal(t, saved, got)
		got = got[:0]
		for e, err := range s.Events(ctx, eventstore.Filter{Cursor: saved[99].Cursor()}) {
			require.NoError(t, err)
			got = append(got, e)
			if len(got) == 10 {
				break
			}
		}
		require.Equal(t, saved[100:110], got, "breaking out of the loop stops the iteration")
	})

	t.Run("StoreCallInsideEventsLoop", func(t *testing.T) {
		// On SQLite an open row cursor on a one-connection pool would block
		// the store call in the loop body; Events pages instead. The
		// deadline turns a deadlock into a failure.
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		for i := range 30 {
			_, err := s.SaveEvent(ctx, testEvent(i))
			require.NoError(t, err)
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n := 0
		for e, err := range s.Events(tctx, eventstore.Filter{AggregateIDs: []string{"aggregateId"}, Limit: 7}) {
			require.NoError(t, err)
			n++
			_, err := s.SaveEvent(tctx, eventstore.Event{AggregateID: "projection", AggregateVersion: e.Position, Type: "SEEN"})
			require.NoError(t, err)
			_, err = s.LoadEvents(tctx, eventstore.Filter{Cursor: e.Cursor(), Limit: 5})
			require.NoError(t, err)
			_, err = s.Describe(tctx, nil)
			require.NoError(t, err)
		}
		require.Equal(t, 30, n)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 60, d.EventCount)
	})

	t.Run("ParallelSavesAreDense", func(t *testing.T) {
		// reSolve: "many events saved in parallel should be continuous":
		// 100 parallel saves continue the previous cursor with no gap.
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		first, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		errs := make(chan error, 100)
		for i := range 100 {
			go func() {
				_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("p-%d", i), AggregateVersion: 1, Type: "T", Timestamp: 1})
				errs <- err
			}()
		}
		for range 100 {
			require.NoError(t, <-errs)
		}
		events, _ := LoadAll(t, s, eventstore.Filter{Cursor: first.Cursor()})
		require.Len(t, events, 100)
		for i, e := range events {
			require.EqualValues(t, i+2, e.Position)
		}
	})

	t.Run("JSONOfDescription", func(t *testing.T) {
		t.Parallel()
		clk := &Clock{MS: 42}
		s, _ := NewStore(t, h, &eventstore.Options{NowFunc: clk.Now})
		_, err := s.SaveEvent(ctx, testEvent(0))
		require.NoError(t, err)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		var m map[string]any
		b, err := json.Marshal(d)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &m))
		for _, k := range []string{"eventCount", "secretCount", "setSecretCount", "deletedSecretCount", "isFrozen", "lastEventTimestamp", "cursor", "schemaVersion"} {
			require.Contains(t, m, k)
		}
		require.EqualValues(t, 42, m["lastEventTimestamp"])
	})
}
