package snapshots_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/esctl/esctl/adapters/postgres"
	_ "github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/snapshots"

	"github.com/esctl/esctl/internal/driver"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// engines are the storage engines every storage test runs on.
var engines = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", testdb.SQLiteURL},
	{"postgres", testdb.PostgresURL},
}

// forEachEngine runs f once per engine, in parallel, each on a fresh store.
func forEachEngine(t *testing.T, opts *eventstore.Options, f func(t *testing.T, s *eventstore.Store)) {
	t.Helper()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			f(t, openStore(t, eng.url(t), opts))
		})
	}
}

func openStore(t *testing.T, url string, opts *eventstore.Options) *eventstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.Open(ctx, url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Init(ctx))
	return s
}

// account is the test aggregate's state.
type account struct {
	Balance  int64 `json:"balance"`
	Deposits int   `json:"deposits"`
}

func applyAccount(a *account, e eventstore.StoredEvent) error {
	var p struct {
		Amount int64 `json:"amount"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return err
	}
	switch e.Type {
	case "Deposited":
		a.Balance += p.Amount
		a.Deposits++
	case "Withdrawn":
		a.Balance -= p.Amount
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	return nil
}

func deposit(amount int64) eventstore.Event {
	return eventstore.Event{Type: "Deposited", Payload: fmt.Appendf(nil, `{"amount":%d}`, amount)}
}

func newRepo(t *testing.T, s *eventstore.Store, opts *snapshots.Options[account]) *snapshots.Repository[account] {
	t.Helper()
	r, err := snapshots.New(s, "account", applyAccount, opts)
	require.NoError(t, err)
	return r
}

// countingDialect passes every call to the real engine and counts the events
// the store reads, so a test can check how many events a Load really read.
type countingDialect struct {
	driver.Driver
	events atomic.Int64
}

func (d *countingDialect) ListEvents(ctx context.Context, p *driver.ListEventsParams) (*driver.ListEventsResult, error) {
	res, err := d.Driver.ListEvents(ctx, p)
	if err == nil {
		d.events.Add(int64(len(res.Events)))
	}
	return res, err
}

// countingStore returns a second Store over s's database that counts the
// events read through it.
func countingStore(t *testing.T, s *eventstore.Store) (*eventstore.Store, *countingDialect) {
	t.Helper()
	d := &countingDialect{Driver: access.Driver(s)}
	cs, err := eventstore.New(d, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs, d
}

// Acceptance 1: an aggregate with 10,000 events and a snapshot every 100 loads
// by reading at most 100 events, counted under the store.
func TestLoadReadsAtMostEveryEvents(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, &snapshots.Options[account]{Every: 100})
		a, err := r.Load(ctx, "acc-1")
		require.NoError(t, err)
		require.Zero(t, a.Version)

		// 10,000 deposits of 1..10,000 through Append, in batches of 7 so
		// that snapshots fall between batches, not on round numbers.
		var want int64
		for v := int64(1); v <= 10_000; {
			var batch []eventstore.Event
			for ; v <= 10_000 && len(batch) < 7; v++ {
				batch = append(batch, deposit(v))
				want += v
			}
			_, err := r.Append(ctx, a, batch...)
			require.NoError(t, err)
			require.NoError(t, a.SnapshotErr)
			require.Less(t, a.SinceSnapshot(), 100)
		}
		require.EqualValues(t, 10_000, a.Version)
		require.Equal(t, want, a.State.Balance)

		cs, counter := countingStore(t, s)
		loaded, err := newRepo(t, cs, &snapshots.Options[account]{Every: 100}).Load(ctx, "acc-1")
		require.NoError(t, err)
		read := counter.events.Load()
		t.Logf("loaded version %d from the snapshot at version %d, reading %d events", loaded.Version, loaded.Loaded.SnapshotVersion, read)
		require.LessOrEqual(t, read, int64(100), "events read by Load")
		require.EqualValues(t, read, loaded.Loaded.EventsRead)
		require.Greater(t, loaded.Loaded.SnapshotVersion, int64(9_900))
		require.NoError(t, loaded.Loaded.Discarded)
		require.EqualValues(t, 10_000, loaded.Version)
		require.Equal(t, a.Position, loaded.Position)
		require.Equal(t, a.State, loaded.State)

		// Without its snapshot the same aggregate reads all 10,000 events
		// and gets the same state.
		require.NoError(t, r.DropSnapshot(ctx, "acc-1"))
		counter.events.Store(0)
		full, err := newRepo(t, cs, &snapshots.Options[account]{Every: snapshots.Never}).Load(ctx, "acc-1")
		require.NoError(t, err)
		require.EqualValues(t, 10_000, counter.events.Load())
		require.Equal(t, a.State, full.State)
		require.Zero(t, full.Loaded.SnapshotVersion)
	})
}

// Events appended by other writers (not through the repository) are picked
// up by Load, which then saves the snapshot the policy asks for.
func TestLoadSavesDueSnapshot(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		var events []eventstore.Event
		for v := int64(1); v <= 250; v++ {
			e := deposit(2)
			e.AggregateID, e.AggregateVersion = "acc-raw", v
			events = append(events, e)
			// another aggregate interleaved, which Load must not read
			events = append(events, eventstore.Event{AggregateID: "other", AggregateVersion: v, Type: "Deposited", Payload: []byte(`{"amount":1}`)})
		}
		_, err := s.SaveEvents(ctx, events)
		require.NoError(t, err)

		r := newRepo(t, s, nil) // DefaultEvery
		a, err := r.Load(ctx, "acc-raw")
		require.NoError(t, err)
		require.Equal(t, 250, a.Loaded.EventsRead)
		require.EqualValues(t, 500, a.State.Balance)
		require.NoError(t, a.SnapshotErr)
		require.Zero(t, a.SinceSnapshot(), "Load saved the due snapshot")

		again, err := r.Load(ctx, "acc-raw")
		require.NoError(t, err)
		require.Zero(t, again.Loaded.EventsRead)
		require.EqualValues(t, 250, again.Loaded.SnapshotVersion)
		require.Equal(t, a.State, again.State)
		require.Equal(t, a.Position, again.Position)

		// One more event: read alone after the snapshot.
		_, err = r.Append(ctx, again, deposit(5))
		require.NoError(t, err)
		third, err := r.Load(ctx, "acc-raw")
		require.NoError(t, err)
		require.Equal(t, 1, third.Loaded.EventsRead)
		require.EqualValues(t, 505, third.State.Balance)
		require.EqualValues(t, 251, third.Version)
	})
}

// The caller's policy: with Never nothing is saved until Snapshot is called.
func TestNeverPolicyAndExplicitSnapshot(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, &snapshots.Options[account]{Every: snapshots.Never})
		a, err := r.Load(ctx, "acc-manual")
		require.NoError(t, err)
		require.NoError(t, r.Snapshot(ctx, a), "nothing to save for an empty aggregate")
		_, found, err := s.LoadSnapshot(ctx, r.Key("acc-manual"))
		require.NoError(t, err)
		require.False(t, found)

		for range 30 {
			_, err := r.Append(ctx, a, deposit(1), deposit(1), deposit(1), deposit(1), deposit(1))
			require.NoError(t, err)
		}
		require.Equal(t, 150, a.SinceSnapshot())
		_, found, err = s.LoadSnapshot(ctx, r.Key("acc-manual"))
		require.NoError(t, err)
		require.False(t, found, "Never saves nothing on its own")

		require.NoError(t, r.Snapshot(ctx, a))
		require.Zero(t, a.SinceSnapshot())
		b, err := r.Load(ctx, "acc-manual")
		require.NoError(t, err)
		require.Zero(t, b.Loaded.EventsRead)
		require.EqualValues(t, 150, b.Loaded.SnapshotVersion)
		require.EqualValues(t, 150, b.State.Balance)

		require.NoError(t, r.DropSnapshot(ctx, "acc-manual"))
		c, err := r.Load(ctx, "acc-manual")
		require.NoError(t, err)
		require.Equal(t, 150, c.Loaded.EventsRead)
		require.Equal(t, b.State, c.State)
	})
}

// A change of StateVersion or of the state's shape invalidates old snapshots
// instead of mis-decoding them.
func TestStateVersionAndShapeInvalidate(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		v1 := newRepo(t, s, &snapshots.Options[account]{Every: 10, StateVersion: 1})
		a, err := v1.Load(ctx, "acc-v")
		require.NoError(t, err)
		for range 4 {
			_, err := v1.Append(ctx, a, deposit(10), deposit(10), deposit(10))
			require.NoError(t, err)
		}
		// 12 events: snapshot at version 12 (taken after the batch that
		// reached 10 or more).
		b, err := v1.Load(ctx, "acc-v")
		require.NoError(t, err)
		require.EqualValues(t, 12, b.Loaded.SnapshotVersion)

		// Same type, new StateVersion: the snapshot is ignored.
		v2 := newRepo(t, s, &snapshots.Options[account]{Every: 10, StateVersion: 2})
		c, err := v2.Load(ctx, "acc-v")
		require.NoError(t, err)
		require.ErrorIs(t, c.Loaded.Discarded, snapshots.ErrStateVersion)
		require.Zero(t, c.Loaded.SnapshotVersion)
		require.Equal(t, 12, c.Loaded.EventsRead)
		require.Equal(t, b.State, c.State)
		require.Zero(t, c.SinceSnapshot(), "the rebuild saved a snapshot of version 2")

		// Version 1 now finds version 2's snapshot and ignores it in turn.
		d, err := v1.Load(ctx, "acc-v")
		require.NoError(t, err)
		require.ErrorIs(t, d.Loaded.Discarded, snapshots.ErrStateVersion)

		// Same StateVersion, but the state type changed shape: a field
		// changed type (JSON would fail or, worse, decode into something
		// else), or a field was added.
		type accountChangedType struct {
			Balance  string `json:"balance"`
			Deposits int    `json:"deposits"`
		}
		type accountAddedField struct {
			Balance  int64 `json:"balance"`
			Deposits int   `json:"deposits"`
			Frozen   bool  `json:"frozen"`
		}
		_, err = v1.Load(ctx, "acc-v") // v1's snapshot is back in place
		require.NoError(t, err)
		changed, err := snapshots.New(s, "account", func(st *accountChangedType, e eventstore.StoredEvent) error {
			st.Balance += "+"
			return nil
		}, &snapshots.Options[accountChangedType]{Every: snapshots.Never, StateVersion: 1})
		require.NoError(t, err)
		e, err := changed.Load(ctx, "acc-v")
		require.NoError(t, err)
		require.ErrorIs(t, e.Loaded.Discarded, snapshots.ErrStateVersion)
		require.Equal(t, "++++++++++++", e.State.Balance, "rebuilt from the events, not decoded")

		added, err := snapshots.New(s, "account", func(st *accountAddedField, e eventstore.StoredEvent) error {
			st.Balance += 10
			return nil
		}, &snapshots.Options[accountAddedField]{Every: snapshots.Never, StateVersion: 1})
		require.NoError(t, err)
		f, err := added.Load(ctx, "acc-v")
		require.NoError(t, err)
		require.ErrorIs(t, f.Loaded.Discarded, snapshots.ErrStateVersion)
		require.EqualValues(t, 120, f.State.Balance)
	})
}

// Snapshots that cannot belong to the aggregate's history are ignored:
// garbage, another aggregate's, one past the end of the store, and one whose
// following events do not continue its version.
func TestInvalidSnapshotsAreIgnored(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, &snapshots.Options[account]{Every: 5})
		a, err := r.Load(ctx, "acc-a")
		require.NoError(t, err)
		for range 5 {
			_, err := r.Append(ctx, a, deposit(3))
			require.NoError(t, err)
		}
		good, found, err := s.LoadSnapshot(ctx, r.Key("acc-a"))
		require.NoError(t, err)
		require.True(t, found)

		check := func(t *testing.T, id string, wantBalance int64, wantRead int) {
			t.Helper()
			got, err := newRepo(t, s, &snapshots.Options[account]{Every: snapshots.Never}).Load(ctx, id)
			require.NoError(t, err)
			require.ErrorIs(t, got.Loaded.Discarded, snapshots.ErrInvalidSnapshot)
			require.Zero(t, got.Loaded.SnapshotVersion)
			require.Equal(t, wantBalance, got.State.Balance)
			require.Equal(t, wantRead, got.Loaded.EventsRead)
		}

		t.Run("Garbage", func(t *testing.T) {
			for i, content := range []string{"", "garbage", "{}\n{}", `{"format":"esctl-snapshot/1","kind":"account","id":"g-3","version":0,"position":5}` + "\n" + `{}`} {
				_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("g-%d", i), AggregateVersion: 1, Type: "Deposited", Payload: []byte(`{"amount":4}`)})
				require.NoError(t, err)
				require.NoError(t, s.SaveSnapshot(ctx, r.Key(fmt.Sprintf("g-%d", i)), []byte(content)))
				check(t, fmt.Sprintf("g-%d", i), 4, 1)
			}
		})
		t.Run("StateDoesNotDecode", func(t *testing.T) {
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "acc-corrupt", AggregateVersion: 1, Type: "Deposited", Payload: []byte(`{"amount":6}`)})
			require.NoError(t, err)
			r2 := newRepo(t, s, &snapshots.Options[account]{Every: 1})
			a, err := r2.Load(ctx, "acc-corrupt") // saves a snapshot
			require.NoError(t, err)
			require.NoError(t, a.SnapshotErr)
			content, _, err := s.LoadSnapshot(ctx, r.Key("acc-corrupt"))
			require.NoError(t, err)
			head, _, _ := bytes.Cut(bytes.Clone(content), []byte("\n"))
			for _, state := range []string{`{"balance":"x"}`, `{"balance":1,"unknown":2}`, `{"balance":1} {}`, `not json`} {
				require.NoError(t, s.SaveSnapshot(ctx, r.Key("acc-corrupt"), append(append(head, '\n'), state...)))
				check(t, "acc-corrupt", 6, 1)
			}
		})
		t.Run("AnotherAggregate", func(t *testing.T) {
			_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "acc-b", AggregateVersion: 1, Type: "Deposited", Payload: []byte(`{"amount":7}`)})
			require.NoError(t, err)
			require.NoError(t, s.SaveSnapshot(ctx, r.Key("acc-b"), good))
			check(t, "acc-b", 7, 1)
		})
		t.Run("PastTheEndOfTheStore", func(t *testing.T) {
			// A snapshot from a longer history (as after restoring an older
			// backup): its position is beyond this store's last event.
			other := openStore(t, testdb.SQLiteURL(t), nil)
			_, err := other.SaveEvent(ctx, eventstore.Event{AggregateID: "acc-a", AggregateVersion: 1, Type: "Deposited", Payload: []byte(`{"amount":1}`)})
			require.NoError(t, err)
			require.NoError(t, other.SaveSnapshot(ctx, r.Key("acc-a"), good))
			got, err := newRepo(t, other, nil).Load(ctx, "acc-a")
			require.NoError(t, err)
			require.ErrorIs(t, got.Loaded.Discarded, snapshots.ErrInvalidSnapshot)
			require.ErrorIs(t, got.Loaded.Discarded, eventstore.ErrCursorBeyondEnd)
			require.EqualValues(t, 1, got.State.Balance)
			require.EqualValues(t, 1, got.Version)
		})
		t.Run("VersionDoesNotContinue", func(t *testing.T) {
			// Another history where acc-a's second event comes after the
			// snapshot's position: the snapshot (version 5) cannot be right.
			other := openStore(t, testdb.SQLiteURL(t), nil)
			events := []eventstore.Event{{AggregateID: "acc-a", AggregateVersion: 1, Type: "Deposited", Payload: []byte(`{"amount":1}`)}}
			for v := int64(1); v <= 8; v++ {
				events = append(events, eventstore.Event{AggregateID: "filler", AggregateVersion: v, Type: "Deposited", Payload: []byte(`{"amount":1}`)})
			}
			events = append(events, eventstore.Event{AggregateID: "acc-a", AggregateVersion: 2, Type: "Deposited", Payload: []byte(`{"amount":1}`)})
			_, err := other.SaveEvents(ctx, events)
			require.NoError(t, err)
			require.NoError(t, other.SaveSnapshot(ctx, r.Key("acc-a"), good))
			got, err := newRepo(t, other, &snapshots.Options[account]{Every: snapshots.Never}).Load(ctx, "acc-a")
			require.NoError(t, err)
			require.ErrorIs(t, got.Loaded.Discarded, snapshots.ErrInvalidSnapshot)
			require.EqualValues(t, 2, got.State.Balance)
			require.EqualValues(t, 2, got.Version)
			require.Equal(t, 3, got.Loaded.EventsRead, "one after the snapshot, then two from the start")
		})
	})
}

// Append has optimistic concurrency: a stale aggregate conflicts and is left
// unchanged; Update reloads and decides again.
func TestConflictsAndUpdate(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, &snapshots.Options[account]{Every: 4, MaxAttempts: 3})

		t.Run("StaleAppendConflicts", func(t *testing.T) {
			a1, err := r.Load(ctx, "acc-c")
			require.NoError(t, err)
			a2, err := r.Load(ctx, "acc-c")
			require.NoError(t, err)
			_, err = r.Append(ctx, a1, deposit(10))
			require.NoError(t, err)
			_, err = r.Append(ctx, a2, deposit(10))
			var ce *eventstore.ConflictError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, "acc-c", ce.AggregateID)
			require.EqualValues(t, 1, ce.AggregateVersion)
			require.Zero(t, a2.Version, "a conflicting append leaves the aggregate unchanged")
			require.Zero(t, a2.State.Balance)
		})

		t.Run("UpdateRetriesAConflict", func(t *testing.T) {
			calls := 0
			out, err := r.Update(ctx, "acc-d", func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) {
				calls++
				if calls == 1 {
					// Another writer gets in between this decision and its
					// append.
					other, err := r.Load(ctx, "acc-d")
					require.NoError(t, err)
					_, err = r.Append(ctx, other, deposit(100))
					require.NoError(t, err)
				}
				return []eventstore.Event{deposit(a.State.Balance + 1)}, nil
			})
			require.NoError(t, err)
			require.Equal(t, 2, calls)
			require.Equal(t, 1, out.Conflicts)
			require.Len(t, out.Events, 1)
			require.EqualValues(t, 2, out.Aggregate.Version)
			require.EqualValues(t, 201, out.Aggregate.State.Balance, "decided on the reloaded state")
		})

		t.Run("UpdateGivesUp", func(t *testing.T) {
			out, err := r.Update(ctx, "acc-e", func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) {
				other, err := r.Load(ctx, "acc-e")
				require.NoError(t, err)
				_, err = r.Append(ctx, other, deposit(1))
				require.NoError(t, err)
				return []eventstore.Event{deposit(1)}, nil
			})
			require.ErrorIs(t, err, eventstore.ErrConflict)
			require.Equal(t, 2, out.Conflicts, "MaxAttempts 3: two retries")
		})

		t.Run("UpdateDecideError", func(t *testing.T) {
			errNo := errors.New("insufficient funds")
			_, err := r.Update(ctx, "acc-f", func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) { return nil, errNo })
			require.ErrorIs(t, err, errNo)
			out, err := r.Update(ctx, "acc-f", func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) { return nil, nil })
			require.NoError(t, err)
			require.Empty(t, out.Events)
		})

		t.Run("ConcurrentUpdates", func(t *testing.T) {
			const workers, each = 8, 25
			patient := newRepo(t, s, &snapshots.Options[account]{Every: 4, MaxAttempts: 1000})
			var wg sync.WaitGroup
			var conflicts atomic.Int64
			for range workers {
				wg.Go(func() {
					for range each {
						out, err := patient.Update(ctx, "acc-g", func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) {
							return []eventstore.Event{deposit(1)}, nil
						})
						if err != nil {
							t.Error(err)
							return
						}
						conflicts.Add(int64(out.Conflicts))
					}
				})
			}
			wg.Wait()
			a, err := patient.Load(ctx, "acc-g")
			require.NoError(t, err)
			require.EqualValues(t, workers*each, a.State.Balance)
			require.EqualValues(t, workers*each, a.Version)
			t.Logf("%d updates, %d conflicts retried", workers*each, conflicts.Load())
		})
	})
}

func TestAppendChecksIDAndVersion(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, nil)
		a, err := r.Load(ctx, "acc-h")
		require.NoError(t, err)

		wrongID := deposit(1)
		wrongID.AggregateID = "acc-other"
		_, err = r.Append(ctx, a, wrongID)
		var ie *eventstore.InvalidEventError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "aggregateId", ie.Field)

		wrongVersion := deposit(1)
		wrongVersion.AggregateVersion = 3
		_, err = r.Append(ctx, a, deposit(1), wrongVersion)
		require.ErrorAs(t, err, &ie)
		require.Equal(t, "aggregateVersion", ie.Field)
		require.Equal(t, 1, ie.Index)
		require.ErrorIs(t, err, eventstore.ErrInvalidEvent)

		explicit := deposit(1)
		explicit.AggregateID, explicit.AggregateVersion = "acc-h", 1
		stored, err := r.Append(ctx, a, explicit, deposit(2))
		require.NoError(t, err)
		require.Len(t, stored, 2)
		require.EqualValues(t, 2, stored[1].AggregateVersion)
		require.Equal(t, stored[1].Position, a.Position)
		require.EqualValues(t, 3, a.State.Balance)

		none, err := r.Append(ctx, a)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

// A snapshot that cannot be saved does not fail the append that made it due:
// the events are stored, and the error is in SnapshotErr.
func TestSnapshotFailureDoesNotFailAppend(t *testing.T) {
	forEachEngine(t, &eventstore.Options{MaxSnapshotBytes: 16}, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		r := newRepo(t, s, &snapshots.Options[account]{Every: 2})
		a, err := r.Load(ctx, "acc-i")
		require.NoError(t, err)
		_, err = r.Append(ctx, a, deposit(1), deposit(1))
		require.NoError(t, err)
		require.ErrorIs(t, a.SnapshotErr, eventstore.ErrInvalidSnapshot, "the store refuses snapshots over 16 bytes")
		require.Equal(t, 2, a.SinceSnapshot(), "still due")
		b, err := r.Load(ctx, "acc-i")
		require.NoError(t, err)
		require.EqualValues(t, 2, b.State.Balance)
		require.Error(t, b.SnapshotErr, "Load tried again")
		require.ErrorIs(t, r.Snapshot(ctx, b), eventstore.ErrInvalidSnapshot, "an explicit Snapshot returns its error")
	})
}

// EncodeFunc and DecodeFunc control the snapshot's state bytes (here a toy
// reversible transform standing in for encryption); a DecodeFunc error makes
// Load ignore the snapshot.
func TestEncodeDecodeFuncs(t *testing.T) {
	forEachEngine(t, nil, func(t *testing.T, s *eventstore.Store) {
		ctx := context.Background()
		flip := func(b []byte) []byte {
			out := make([]byte, len(b))
			for i, c := range b {
				out[i] = c ^ 0xff
			}
			return out
		}
		var failDecode atomic.Bool
		opts := &snapshots.Options[account]{
			Every: 3,
			EncodeFunc: func(ctx context.Context, id string, st *account) ([]byte, error) {
				b, err := json.Marshal(st)
				return flip(b), err
			},
			DecodeFunc: func(ctx context.Context, id string, content []byte, st *account) error {
				if failDecode.Load() {
					st.Balance = -999 // a failing decoder's partial state must not leak
					return errors.New("key unavailable")
				}
				return json.Unmarshal(flip(content), st)
			},
		}
		r := newRepo(t, s, opts)
		a, err := r.Load(ctx, "acc-j")
		require.NoError(t, err)
		_, err = r.Append(ctx, a, deposit(5), deposit(5), deposit(5))
		require.NoError(t, err)
		require.NoError(t, a.SnapshotErr)

		content, found, err := s.LoadSnapshot(ctx, r.Key("acc-j"))
		require.NoError(t, err)
		require.True(t, found)
		require.NotContains(t, string(content), `"balance"`, "the state is stored as EncodeFunc made it")

		b, err := r.Load(ctx, "acc-j")
		require.NoError(t, err)
		require.EqualValues(t, 3, b.Loaded.SnapshotVersion)
		require.EqualValues(t, 15, b.State.Balance)

		failDecode.Store(true)
		c, err := r.Load(ctx, "acc-j")
		require.NoError(t, err)
		require.ErrorIs(t, c.Loaded.Discarded, snapshots.ErrInvalidSnapshot)
		require.EqualValues(t, 15, c.State.Balance)
		require.Equal(t, 3, c.Loaded.EventsRead)
	})
}

func TestNewChecksArguments(t *testing.T) {
	s := openStore(t, testdb.SQLiteURL(t), nil)
	for name, f := range map[string]func() error{
		"nil store":      func() error { _, err := snapshots.New(nil, "k", applyAccount, nil); return err },
		"nil apply":      func() error { _, err := snapshots.New[account](s, "k", nil, nil); return err },
		"empty kind":     func() error { _, err := snapshots.New(s, "", applyAccount, nil); return err },
		"colon in kind":  func() error { _, err := snapshots.New(s, "a:b", applyAccount, nil); return err },
		"kind not UTF-8": func() error { _, err := snapshots.New(s, "\xff", applyAccount, nil); return err },
		"encode without decode": func() error {
			_, err := snapshots.New(s, "k", applyAccount, &snapshots.Options[account]{EncodeFunc: func(context.Context, string, *account) ([]byte, error) { return nil, nil }})
			return err
		},
		"bad every": func() error {
			_, err := snapshots.New(s, "k", applyAccount, &snapshots.Options[account]{Every: -2})
			return err
		},
		"bad page size": func() error {
			_, err := snapshots.New(s, "k", applyAccount, &snapshots.Options[account]{PageSize: eventstore.MaxLimit + 1})
			return err
		},
	} {
		require.ErrorIs(t, f(), snapshots.ErrInvalidArgument, name)
	}
	r := newRepo(t, s, nil)
	require.Equal(t, "aggregate:account:acc-1", r.Key("acc-1"))
	require.Equal(t, "account", r.Kind())
	_, err := r.Load(context.Background(), "")
	require.ErrorIs(t, err, snapshots.ErrInvalidArgument)
}
