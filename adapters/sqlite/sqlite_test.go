package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/esctl/esctl/adapters/postgres" // the peer engine of the round trips
	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/internal/conformance/consumertest"
	"github.com/esctl/esctl/internal/conformance/tooltest"
	"github.com/esctl/esctl/internal/driver/drivertest"
	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/migrations"
	"github.com/esctl/esctl/transfer"
)

func TestMain(m *testing.M) {
	conformance.Child() // when this process is one of the suite's child processes
	if code, ok := processChild(); ok {
		os.Exit(code)
	}
	testdb.InitStoreFunc = func(ctx context.Context, url string) error {
		s, err := eventstore.Open(ctx, url, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Init(ctx)
	}
	testdb.Main(m)
}

// harness gives each test its own SQLite file; round trips also go through
// PostgreSQL.
var harness = conformance.Harness{
	NewURL: testdb.SQLiteURL,
	Peers:  map[string]func(testing.TB) string{"postgres": testdb.PostgresURL},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, harness)
}

// TestToolingConformance runs the tooling's suite (packages transfer and
// backup) on this engine.
func TestToolingConformance(t *testing.T) {
	t.Parallel()
	tooltest.Run(t, harness)
}

// TestConsumerConformance runs the durable consumers' suite (package
// consumer) on this engine.
func TestConsumerConformance(t *testing.T) {
	t.Parallel()
	consumertest.Run(t, harness)
}

// TestDriver checks each operation of the driver against its contract.
func TestDriver(t *testing.T) {
	t.Parallel()
	drivertest.Exercise(t, testdb.SQLiteURL)
}

func TestEngineName(t *testing.T) {
	if got := sqlite.New(nil).Name(); got != "sqlite" {
		t.Fatalf("Name() = %q", got)
	}
}

// TestDSNSettings reads back, on a connection of each pool, the settings
// DSN promises: the writer's durability, cache and WAL checkpoint interval,
// the reader's query_only.
func TestDSNSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := strings.TrimPrefix(testdb.SQLiteURL(t), "sqlite://")
	for _, tc := range []struct {
		readOnly bool
		want     map[string]string
	}{
		{false, map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "10000", "secure_delete": "1",
			"foreign_keys": "1", "query_only": "0", "cache_size": "-8192", "wal_autocheckpoint": "4000"}},
		{true, map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "10000", "secure_delete": "1",
			"foreign_keys": "1", "query_only": "1", "wal_autocheckpoint": "1000"}},
	} {
		db, err := sql.Open("sqlite", sqlite.DSN(path, tc.readOnly))
		require.NoError(t, err)
		for name, want := range tc.want {
			var got string
			require.NoError(t, db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got), name)
			require.Equal(t, want, got, "readOnly %v: PRAGMA %s", tc.readOnly, name)
		}
		require.NoError(t, db.Close())
	}
}

// TestMigration4QuarantinesInvisibleEvents upgrades a store of schema
// version 3 that holds events at positions <= 0 (the PostgreSQL twin of this
// test has the history): migration 4 rebuilds events with the constraint,
// moves those events to events_quarantine, and their keys become free.
func TestMigration4QuarantinesInvisibleEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	_, err = s.SaveEvents(ctx, []eventstore.Event{{AggregateID: "a", AggregateVersion: 1, Type: "T"}, {AggregateID: "a", AggregateVersion: 2, Type: "T"}})
	require.NoError(t, err)
	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: int(migrations.Latest(sqlite.EngineName)) - 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, st.Version)

	db, err := sql.Open("sqlite", sqlite.DSN(strings.TrimPrefix(url, "sqlite://"), false))
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(ctx, `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload)
		VALUES (-1, 'ghost', 1, 'T', 5, '{"n":1}'), (0, 'ghost', 2, 'T', 6, '{"n":2}')`)
	require.NoError(t, err, "schema 3 has no constraint on positions")

	require.NoError(t, s.Init(ctx))
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE position <= 0`).Scan(&n))
	require.Zero(t, n)
	rows, err := db.QueryContext(ctx, `SELECT position, aggregate_id, aggregate_version, payload FROM events_quarantine ORDER BY position`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var pos, version int64
		var id, payload string
		require.NoError(t, rows.Scan(&pos, &id, &version, &payload))
		got = append(got, fmt.Sprintf("%d %s %d %s", pos, id, version, payload))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{`-1 ghost 1 {"n":1}`, `0 ghost 2 {"n":2}`}, got)

	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "ghost", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err, "the quarantined event's key is free again")
	require.EqualValues(t, 3, e.Position)
	page, err := s.LoadEvents(ctx, eventstore.Filter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 3, "the rebuilt table kept every event")
	require.Equal(t, "a", page.Events[1].AggregateID)

	_, err = db.ExecContext(ctx, `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES (0, 'b', 1, 'T', 1, '{}')`)
	require.ErrorContains(t, err, "CHECK constraint failed: events_position_positive")
	var idx int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' AND name LIKE 'events_%_idx'`).Scan(&idx))
	require.Equal(t, 3, idx, "the rebuilt table has its indexes")

	_, err = s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: 1})
	require.NoError(t, err)
	require.NoError(t, s.Init(ctx))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM events_quarantine`).Scan(&n))
	require.Equal(t, 2, n, "down and up keep the quarantine")
	require.NoError(t, s.Drop(ctx))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&n))
	require.Zero(t, n, "Drop removes events_quarantine with the rest")
}

// TestFreezeHoldsInTheDatabase: an INSERT into a frozen store's events
// from outside the store (another tool, raw SQL, an older esctl) fails in
// the database itself; the store's own maintenance import into the frozen
// store still goes in; and migration 6 counts the aggregates of a store it
// upgrades, then the writes keep the count.
func TestFreezeHoldsInTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	_, err = s.SaveEvents(ctx, []eventstore.Event{{AggregateID: "a", AggregateVersion: 1, Type: "T"}, {AggregateID: "a", AggregateVersion: 2, Type: "T"}, {AggregateID: "b", AggregateVersion: 1, Type: "T"}})
	require.NoError(t, err)

	// Down to schema 5 and up again: the count is backfilled.
	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: int(migrations.Latest(sqlite.EngineName)) - 5})
	require.NoError(t, err)
	require.EqualValues(t, 5, st.Version)
	d, err := s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.AggregateCount, "counted on a store whose migrations are pending")
	require.NoError(t, s.Init(ctx))
	d, err = s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.AggregateCount, "backfilled by migration 6")

	db, err := sql.Open("sqlite", sqlite.DSN(strings.TrimPrefix(url, "sqlite://"), false))
	require.NoError(t, err)
	defer db.Close()
	const raw = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES (?, ?, 1, 'T', 5, '{}')`
	require.NoError(t, s.Freeze(ctx, "raw SQL test"))
	d, err = s.Describe(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "raw SQL test", d.FrozenReason)
	_, err = db.ExecContext(ctx, raw, 4, "raw")
	require.ErrorContains(t, err, "esctl: the store is frozen")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, 3, n, "the frozen store's events are unchanged")

	// The store's own maintenance import writes into the frozen store.
	in := `{"aggregateId":"c","aggregateVersion":1,"type":"T","timestamp":1,"payload":{}}` + "\n"
	res, err := transfer.ImportEvents(ctx, s, strings.NewReader(in), &transfer.ImportOptions{Mode: transfer.MaintenanceManual})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Events)
	d, err = s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.True(t, d.IsFrozen)
	require.EqualValues(t, 3, d.AggregateCount)
	var maintenance int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT maintenance FROM store_state`).Scan(&maintenance))
	require.Zero(t, maintenance, "the bypass is closed after the store's write")
	_, err = db.ExecContext(ctx, raw, 5, "raw")
	require.ErrorContains(t, err, "esctl: the store is frozen", "still refused after the import")

	require.NoError(t, s.Unfreeze(ctx))
	_, err = db.ExecContext(ctx, raw, 5, "raw")
	require.NoError(t, err, "an unfrozen store takes the insert")
	require.NoError(t, db.QueryRowContext(ctx, `SELECT aggregate_count FROM store_state`).Scan(&n))
	require.Equal(t, 4, n, "the raw insert was counted by the trigger")
}
