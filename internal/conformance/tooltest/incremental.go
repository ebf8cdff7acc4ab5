package tooltest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/transfer"
)

// checkStoreOrder is reSolve's validateEvents: in position order, versions
// are contiguous from 1 per aggregate and timestamps never decrease.
func checkStoreOrder(t *testing.T, s *eventstore.Store) []eventstore.StoredEvent {
	t.Helper()
	events, _ := conformance.LoadAll(t, s, eventstore.Filter{Limit: eventstore.MaxLimit})
	versions := map[string]int64{}
	var lastTS int64
	for _, e := range events {
		versions[e.AggregateID]++
		require.Equal(t, versions[e.AggregateID], e.AggregateVersion, "aggregate %s at position %d", e.AggregateID, e.Position)
		require.GreaterOrEqual(t, e.Timestamp, lastTS, "timestamps decrease at position %d", e.Position)
		lastTS = e.Timestamp
	}
	return events
}

func vevent(agg, typ string, ts int64, payload string) transfer.VersionlessEvent {
	return transfer.VersionlessEvent{AggregateID: agg, Type: typ, Timestamp: ts, Payload: []byte(payload)}
}

func runIncremental(t *testing.T, h conformance.Harness) {
	ctx := context.Background()
	t.Run("FromNDJSON", func(t *testing.T) { t.Parallel(); runIncrementalFrom(t, h) })
	t.Run("DryRunMatchesCommit", func(t *testing.T) { t.Parallel(); runIncrementalDryRun(t, h) })

	t.Run("WorksCorrectly", func(t *testing.T) {
		// reSolve: "incremental import should work correctly".
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		n := 2500 + rand.IntN(75)
		events := make([]transfer.VersionlessEvent, n)
		for i := range events {
			events[i] = vevent(fmt.Sprintf("aggregateId%d", i%10), fmt.Sprintf("EVENT%d", i%3), 1_700_000_000_000+int64(i/7), fmt.Sprintf(`{"eventIndex":%d}`, i))
		}
		res, err := transfer.IncrementalImport(ctx, s, events, nil)
		require.NoError(t, err)
		require.EqualValues(t, n, res.Appended)
		require.EqualValues(t, 1, res.FirstPosition)
		require.EqualValues(t, n, res.LastPosition)
		require.Len(t, checkStoreOrder(t, s), n)
		open, err := transfer.IncrementalImports(ctx, s)
		require.NoError(t, err)
		require.Empty(t, open, "a committed import is closed")
	})

	t.Run("Metadata", func(t *testing.T) {
		// Pushed events keep their metadata; an event is a duplicate of a
		// stored or pushed one only with the same metadata too.
		t.Parallel()
		s, _ := conformance.NewStore(t, h, &eventstore.Options{NowFunc: (&conformance.Clock{MS: 1}).Now})
		_, err := s.SaveEvents(ctx, []eventstore.Event{
			{AggregateID: "m", AggregateVersion: 1, Type: "T", Timestamp: 10, Payload: []byte(`{"a":1}`), Metadata: []byte(`{"c":"x"}`)},
			{AggregateID: "m", AggregateVersion: 2, Type: "T", Timestamp: 11, Payload: []byte(`{"a":2}`)},
		})
		require.NoError(t, err)
		with := func(e transfer.VersionlessEvent, m string) transfer.VersionlessEvent {
			e.Metadata = []byte(m)
			return e
		}
		pushed := []transfer.VersionlessEvent{
			with(vevent("m", "T", 10, `{"a":1}`), `{"c":"x"}`),            // stored: duplicate
			vevent("m", "T", 11, `{"a":2}`),                               // stored, no metadata: duplicate
			with(vevent("m", "T", 11, `{"a":2}`), `{"c":"y"}`),            // other metadata: fresh
			with(vevent("m", "T", 12, `{"a":3}`), ` { "c" : "\u00e9" } `), // fresh, compacted
			with(vevent("m", "T", 12, `{"a":3}`), `{"c":"\u00e9"}`),       // pushed twice: duplicate
			with(vevent("n", "T", 13, `{}`), `null`),                      // null: none
		}
		res, err := transfer.IncrementalImport(ctx, s, pushed, nil)
		require.NoError(t, err)
		require.EqualValues(t, 3, res.Appended)
		all := checkStoreOrder(t, s)
		require.Len(t, all, 5)
		var got []string
		for _, e := range all[2:] {
			got = append(got, e.AggregateID+" "+string(e.Payload)+" "+string(e.Metadata))
		}
		require.Equal(t, []string{`m {"a":2} {"c":"y"}`, `m {"a":3} {"c":"\u00e9"}`, `n {} `}, got)
		require.Nil(t, all[4].Metadata)

		_, err = transfer.IncrementalImport(ctx, s, []transfer.VersionlessEvent{with(vevent("m", "T", 20, `{}`), `[1]`)}, nil)
		var ie *eventstore.InvalidEventError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "metadata", ie.Field)
	})

	t.Run("ShuffledConcurrentPushes", func(t *testing.T) {
		// reSolve: "inject-events should work correctly": existing events,
		// then 25,000 events pushed as shuffled batches of 256 from several
		// goroutines; the commit orders them by timestamp.
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		initial := make([]eventstore.Event, 250)
		for i := range initial {
			initial[i] = eventstore.Event{AggregateID: fmt.Sprintf("id_%d", i%25), AggregateVersion: int64(i/25 + 1), Type: "INIT", Timestamp: 1_000_000 + int64(i)}
		}
		_, err := s.SaveEvents(ctx, initial)
		require.NoError(t, err)
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		const n = 25_000
		events := make([]transfer.VersionlessEvent, n)
		for i := range events {
			events[i] = vevent(fmt.Sprintf("id_%d", i%25), "EVENT", 4_000_000_000_000+int64(i), fmt.Sprintf(`{"i":%d}`, i))
		}
		var batches [][]transfer.VersionlessEvent
		for i := 0; i < n; i += 256 {
			batches = append(batches, events[i:min(i+256, n)])
		}
		rand.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
		var wg sync.WaitGroup
		errs := make(chan error, len(batches))
		sem := make(chan struct{}, 8)
		for _, b := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				errs <- transfer.PushIncrementalImport(ctx, s, id, b)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		list, err := transfer.IncrementalImports(ctx, s)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.EqualValues(t, n, list[0].Events)
		res, err := transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.NoError(t, err)
		require.EqualValues(t, n, res.Appended)
		all := checkStoreOrder(t, s)
		require.Len(t, all, 250+n)
		for i, e := range all[250:] {
			require.Equal(t, fmt.Sprintf(`{"i":%d}`, i), string(e.Payload), "ordered by timestamp, not push order")
		}
	})

	t.Run("RetriesAreDeduplicated", func(t *testing.T) {
		// reSolve: "inject-events should work correctly with retries": the
		// first 66% are in the store; an import of everything from 33% on
		// appends only the missing third.
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		const n = 3000
		all := make([]transfer.VersionlessEvent, n)
		for i := range all {
			all[i] = vevent(fmt.Sprintf("a%d", i%30), "E", 2_000_000+int64(i), fmt.Sprintf(`{"i":%d,"x":"é"}`, i))
		}
		_, err := transfer.IncrementalImport(ctx, s, all[:n*66/100], nil)
		require.NoError(t, err)
		res, err := transfer.IncrementalImport(ctx, s, all[n*33/100:], nil)
		require.NoError(t, err)
		require.EqualValues(t, n-n*66/100, res.Appended)
		require.EqualValues(t, n*66/100-n*33/100, res.Duplicates)
		require.Len(t, checkStoreOrder(t, s), n)
	})

	t.Run("SameTimestampKeepsPushOrder", func(t *testing.T) {
		// reSolve: "preserve order of input events with the same timestamp".
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		// History as reSolve's test imports it: timestamps kept as given.
		var initial []transfer.VersionlessEvent
		for a := range 5 {
			for v := range 7 {
				initial = append(initial, vevent(fmt.Sprintf("id_%d", a), "INIT", 1_626_000_000_000+int64(a*7+v), `{}`))
			}
		}
		_, err := transfer.IncrementalImport(ctx, s, initial, nil)
		require.NoError(t, err)
		var events []transfer.VersionlessEvent
		for i := range 6 {
			ts := int64(1626110770000)
			if i >= 2 {
				ts = 1626132179642
			}
			events = append(events, vevent("id_0", "EVENT", ts, fmt.Sprintf(`{"idx":%d}`, i)))
		}
		_, err = transfer.IncrementalImport(ctx, s, events, nil)
		require.NoError(t, err)
		for a := range 5 {
			got, _ := conformance.LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{fmt.Sprintf("id_%d", a)}})
			for v, e := range got {
				require.EqualValues(t, v+1, e.AggregateVersion)
			}
		}
		got, _ := conformance.LoadAll(t, s, eventstore.Filter{AggregateIDs: []string{"id_0"}, EventTypes: []string{"EVENT"}})
		for i, e := range got {
			require.Equal(t, fmt.Sprintf(`{"idx":%d}`, i), string(e.Payload), "push order within a timestamp")
			require.EqualValues(t, 8+i, e.AggregateVersion)
		}
	})

	t.Run("InBatchDuplicates", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		e := vevent("a", "T", 5, `{"x":1}`)
		res, err := transfer.IncrementalImport(ctx, s, []transfer.VersionlessEvent{e, e, vevent("a", "T", 5, `{"x": 1}`), e, vevent("a", "U", 5, `{"x":1}`)}, nil)
		require.NoError(t, err)
		// `{"x": 1}` compacts to the same bytes as `{"x":1}`.
		require.EqualValues(t, 2, res.Appended)
		require.EqualValues(t, 3, res.Duplicates)
	})

	t.Run("OlderEventsPolicy", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T", Timestamp: 1000})
		require.NoError(t, err)
		newest, err := s.LatestEvent(ctx, eventstore.Filter{})
		require.NoError(t, err)
		ts := newest.Timestamp
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{
			vevent("b", "T", ts-2, `1`), vevent("c", "T", ts-1, `2`), vevent("b", "T", ts, `3`), vevent("b", "T", ts+1, `4`),
		}))
		_, err = transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.ErrorIs(t, err, transfer.ErrOlderEvents, "OlderFail is the default")
		var oe *transfer.OlderEventsError
		require.ErrorAs(t, err, &oe)
		require.EqualValues(t, 2, oe.Count)
		require.Equal(t, "b", oe.AggregateID)
		require.Equal(t, ts-2, oe.Timestamp)
		require.Equal(t, ts, oe.Newest)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, d.EventCount, "a failed commit writes nothing")
		// The staged events stay: retry with the other policy.
		res, err := transfer.CommitIncrementalImport(ctx, s, id, &transfer.CommitOptions{Older: transfer.OlderSkip})
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Appended, "equal timestamps are not older")
		require.EqualValues(t, 2, res.Skipped)
		checkStoreOrder(t, s)
	})

	t.Run("FreezeBlocksCommitOnly", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		require.NoError(t, s.Freeze(ctx, ""))
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err, "begin is not blocked by freeze")
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{vevent("a", "T", 1, `{}`)}), "push is not blocked")
		_, err = transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.ErrorIs(t, err, eventstore.ErrFrozen)
		require.NoError(t, s.Unfreeze(ctx))
		res, err := transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.NoError(t, err, "the failed commit kept the staged events")
		require.EqualValues(t, 1, res.Appended)
	})

	t.Run("TwoImportsAndRollback", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		a, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		b, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		require.NotEqual(t, a, b)
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, a, []transfer.VersionlessEvent{vevent("a", "T", 1, `"a1"`), vevent("a", "T", 2, `"a2"`)}))
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, b, []transfer.VersionlessEvent{vevent("b", "T", 1, `"b1"`)}))
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, b, nil), "an empty push is a no-op")
		list, err := transfer.IncrementalImports(ctx, s)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.NoError(t, transfer.RollbackIncrementalImport(ctx, s, a))
		require.ErrorIs(t, transfer.RollbackIncrementalImport(ctx, s, a), transfer.ErrImportNotFound)
		require.ErrorIs(t, transfer.PushIncrementalImport(ctx, s, a, []transfer.VersionlessEvent{vevent("a", "T", 3, `1`)}), transfer.ErrImportNotFound)
		_, err = transfer.CommitIncrementalImport(ctx, s, a, nil)
		require.ErrorIs(t, err, transfer.ErrImportNotFound)
		res, err := transfer.CommitIncrementalImport(ctx, s, b, nil)
		require.NoError(t, err, "rolling back one import leaves the other intact")
		require.EqualValues(t, 1, res.Appended)
		events, _ := conformance.LoadAll(t, s, eventstore.Filter{})
		require.Len(t, events, 1)
		require.Equal(t, "b", events[0].AggregateID)
		empty, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		res, err = transfer.CommitIncrementalImport(ctx, s, empty, nil)
		require.NoError(t, err)
		require.Zero(t, res.Appended)
	})

	t.Run("CommitByAnotherStoreAfterClose", func(t *testing.T) {
		// Staging lives in the database: a later process that knows the id
		// commits it.
		t.Parallel()
		first, url := conformance.NewStore(t, h, nil)
		id, err := transfer.BeginIncrementalImport(ctx, first)
		require.NoError(t, err)
		require.NoError(t, transfer.PushIncrementalImport(ctx, first, id, []transfer.VersionlessEvent{vevent("a", "T", 1, `{"n":1}`), vevent("a", "T", 2, `{"n":2}`)}))
		require.NoError(t, first.Close())
		second := conformance.Open(t, url, nil)
		list, err := transfer.IncrementalImports(ctx, second)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, id, list[0].ID)
		res, err := transfer.CommitIncrementalImport(ctx, second, id, nil)
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Appended)
	})

	t.Run("ValidationAndVersions", func(t *testing.T) {
		t.Parallel()
		s, _ := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvents(ctx, []eventstore.Event{{AggregateID: "a", AggregateVersion: 1, Type: "T", Timestamp: 1}, {AggregateID: "a", AggregateVersion: 7, Type: "T", Timestamp: 1}})
		require.NoError(t, err)
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		err = transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{vevent("", "T", 1, `{}`)})
		require.ErrorIs(t, err, eventstore.ErrInvalidEvent)
		err = transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{vevent("a", "T", 1, `{"x":1,"x":2}`)})
		require.ErrorIs(t, err, eventstore.ErrInvalidEvent)
		last, err := s.LatestEvent(ctx, eventstore.Filter{})
		require.NoError(t, err)
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, id, []transfer.VersionlessEvent{vevent("a", "T", last.Timestamp+5, `{}`)}))
		res, err := transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.NoError(t, err)
		e, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{"a"}})
		require.NoError(t, err)
		require.EqualValues(t, 8, e.AggregateVersion, "continues the aggregate's highest version")
		require.Equal(t, res.LastPosition, e.Position)
	})

	t.Run("ReadersSeeNoneOrAll", func(t *testing.T) {
		// A commit is one transaction, and its positions come after every
		// earlier one: a reader from the pre-commit end sees 0 or all.
		t.Parallel()
		s, url := conformance.NewStore(t, h, nil)
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "base", AggregateVersion: 1, Type: "T", Timestamp: 1})
		require.NoError(t, err)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		const n = 10_000
		events := make([]transfer.VersionlessEvent, n)
		for i := range events {
			events[i] = vevent(fmt.Sprintf("agg-%d", i%100), "IMPORTED", 3_000_000_000_000+int64(i), fmt.Sprintf(`{"i":%d}`, i))
		}
		id, err := transfer.BeginIncrementalImport(ctx, s)
		require.NoError(t, err)
		require.NoError(t, transfer.PushIncrementalImport(ctx, s, id, events))
		reader := conformance.Open(t, url, nil)
		seen := map[int]int{}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				page, err := reader.LoadEvents(ctx, eventstore.Filter{Cursor: d.Cursor, Limit: eventstore.MaxLimit})
				if err != nil {
					done <- err
					return
				}
				seen[len(page.Events)]++
				select {
				case <-stop:
					if len(page.Events) == n {
						done <- nil
						return
					}
				default:
				}
			}
		}()
		_, err = transfer.CommitIncrementalImport(ctx, s, id, nil)
		require.NoError(t, err)
		close(stop)
		require.NoError(t, <-done)
		counts := make([]int, 0, len(seen))
		for k := range seen {
			counts = append(counts, k)
		}
		sort.Ints(counts)
		require.Subset(t, []int{0, n}, counts, "a reader saw part of a commit: %v", seen)
	})
}
