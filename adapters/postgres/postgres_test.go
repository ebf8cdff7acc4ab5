package postgres_test

import (
	"context"

	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/esctl/esctl/adapters/sqlite" // the peer engine of the round trips
	"github.com/esctl/esctl/transfer"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/adapters/postgres"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/conformance"
	"github.com/esctl/esctl/internal/conformance/consumertest"
	"github.com/esctl/esctl/internal/conformance/tooltest"
	"github.com/esctl/esctl/internal/driver/drivertest"
	"github.com/esctl/esctl/internal/testdb"
	"github.com/esctl/esctl/migrations"
)

func TestMain(m *testing.M) {
	conformance.Child() // when this process is one of the suite's child processes
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

// harness runs the suite with the sizes issue 3 asks of PostgreSQL: the tail
// check with 4 Stores on separate pools x 8 writers x 2,000 events, and the
// OCC race with 32 goroutines on 32 separate pools for 1,000 rounds.
var harness = conformance.Harness{
	NewURL: testdb.PostgresURL,
	Peers:  map[string]func(testing.TB) string{"sqlite": testdb.SQLiteURL},
	Concurrency: conformance.Concurrency{
		RaceStores: 32, RaceGoroutines: 32, RaceRounds: 1000,
		TailStores: 4, TailWriters: 8, TailPerWriter: 2000,
	},
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
	drivertest.Exercise(t, testdb.PostgresURL)
}

// TestConformanceInSchema runs the lifecycle and save/load parts of the
// suite on a store in a non-default schema.
func TestStoreInSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	a, err := eventstore.Open(ctx, withSchema(url, "bank_a"), nil)
	require.NoError(t, err)
	defer a.Close()
	b, err := eventstore.Open(ctx, withSchema(url, "bank_b"), nil)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Init(ctx))
	require.NoError(t, b.Init(ctx))
	_, err = a.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err)
	_, err = b.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err, "stores in two schemas are independent")
	require.NoError(t, a.Freeze(ctx, ""))
	_, err = b.SaveEvent(ctx, eventstore.Event{AggregateID: "x", AggregateVersion: 2, Type: "T"})
	require.NoError(t, err, "freezing one store leaves the other writable")
	require.NoError(t, a.Drop(ctx))

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'bank_a'`).Scan(&n))
	require.Zero(t, n, "Drop removed the empty schema")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM bank_b.events`).Scan(&n))
	require.Equal(t, 2, n)

	for _, bad := range []string{"Bank", "1bank", "bank-a", `x"; DROP TABLE y; --`, "a b", "ünicode", string(make([]byte, 64))} {
		_, err := postgres.NewWithOptions(pool, &postgres.Options{Schema: bad})
		require.Error(t, err, "schema %q", bad)
	}
	_, err = eventstore.Open(ctx, withSchema(url, "Bad-Name"), nil)
	require.ErrorContains(t, err, "invalid schema name")
}

// TestTailControlWithoutLockSkips is the control for the tail check: the
// same kind of workload against a plain identity column, without the
// store-state lock, read by "id > cursor ORDER BY id". Positions are then
// handed out at INSERT time and commit in any order, and a reader skips
// events. The test requires skips, so the tail check (which requires none on
// the real store) cannot pass because its workload is too gentle.
func TestTailControlWithoutLockSkips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.PostgresPool(t)
	_, err := pool.Exec(ctx, `CREATE TABLE naive (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, writer int NOT NULL, n int NOT NULL)`)
	require.NoError(t, err)

	const writers, perWriter = 32, 2000
	total := writers * perWriter
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perWriter; n++ {
				// INSERT and COMMIT in separate round trips, as an
				// application transaction would.
				tx, err := pool.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, `INSERT INTO naive (writer, n) VALUES ($1, $2)`, w, n)
				}
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	seen := 0
	var cursor int64
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		for {
			finished := done.Load()
			rows, err := pool.Query(ctx, `SELECT id FROM naive WHERE id > $1 ORDER BY id LIMIT 100`, cursor)
			if err != nil {
				errs <- err
				return
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				errs <- err
				return
			}
			for _, id := range ids {
				seen++
				cursor = id
			}
			if finished && len(ids) == 0 {
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-reader
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	skipped := total - seen
	t.Logf("naive identity-column reader: saw %d of %d events, skipped %d", seen, total, skipped)
	require.Positive(t, skipped, "the control workload must make a lock-free reader skip events")
}

// TestFreezeWaitsForAnAppendHeldInItsTransaction holds an append inside its
// transaction (a trigger blocks on an advisory lock the test holds), calls
// Freeze, and checks that Freeze returns only after the append ended, that
// the append's event is in the store, and that every append after Freeze
// returned fails with ErrFrozen.
func TestFreezeWaitsForAnAppendHeldInItsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `
CREATE FUNCTION hold_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.aggregate_id = 'held' THEN
        PERFORM pg_advisory_xact_lock(4242);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hold_append BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION hold_append();`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `SELECT pg_advisory_lock(4242)`)
	require.NoError(t, err)

	appended := make(chan error, 1)
	var held eventstore.StoredEvent
	go func() {
		var err error
		held, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "held", AggregateVersion: 1, Type: "T"})
		appended <- err
	}()
	// Wait until the append is blocked inside its transaction.
	require.Eventually(t, func() bool {
		var waiting int
		_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return waiting == 1
	}, 10*time.Second, 10*time.Millisecond)

	other, err := eventstore.Open(ctx, url, nil) // a second process, in effect
	require.NoError(t, err)
	defer other.Close()
	frozen := make(chan error, 1)
	go func() { frozen <- other.Freeze(ctx, "") }()
	select {
	case err := <-frozen:
		t.Fatalf("Freeze returned (%v) while an append held the store lock", err)
	case <-time.After(500 * time.Millisecond):
	}

	_, err = admin.Exec(ctx, `SELECT pg_advisory_unlock(4242)`)
	require.NoError(t, err)
	require.NoError(t, <-appended, "the append that held the lock commits")
	require.NoError(t, <-frozen, "Freeze returns once the append ended")

	d, err := other.Describe(ctx, nil)
	require.NoError(t, err)
	require.True(t, d.IsFrozen)
	require.Equal(t, held.Position, d.LastPosition, "the held append is the last event")
	for i := range 20 {
		_, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("after-%d", i), AggregateVersion: 1, Type: "T"})
		require.ErrorIs(t, err, eventstore.ErrFrozen)
	}
	d2, err := other.Describe(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, d.LastPosition, d2.LastPosition)
}

// TestLockTimeout: a session that holds the store-state row lock (as a stuck
// client would) makes writers fail with ErrTimeout after the lock timeout
// instead of waiting forever.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	d, err := postgres.NewWithOptions(pool, &postgres.Options{LockTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	s, err := eventstore.New(d, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))

	stuck, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer stuck.Rollback(ctx)
	_, err = stuck.Exec(ctx, `SELECT 1 FROM store_state WHERE id = 1 FOR UPDATE`)
	require.NoError(t, err)

	start := time.Now()
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T"})
	require.ErrorIs(t, err, eventstore.ErrTimeout)
	require.ErrorIs(t, s.Freeze(ctx, ""), eventstore.ErrTimeout)
	require.ErrorIs(t, s.Secrets().SetSecret(ctx, "k", "v"), eventstore.ErrTimeout)
	t.Logf("three writes timed out in %v", time.Since(start))
	require.NoError(t, stuck.Rollback(ctx))
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "a", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err, "the store works again once the lock is released")
}

// TestNewOwnsNothing: a Store made with New leaves the caller's pool open.
func TestNewOwnsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.PostgresPool(t)
	s, err := eventstore.New(postgres.New(pool), nil)
	require.NoError(t, err)
	require.NoError(t, s.Init(ctx))
	require.NoError(t, s.Close())
	require.NoError(t, pool.Ping(ctx), "closing the Store must not close the caller's pool")
	require.Equal(t, "public", postgres.New(pool).Schema())
}

// withSchema adds ?schema= (or &schema=) to a URL.
func withSchema(url, schema string) string {
	if strings.Contains(url, "?") {
		return url + "&schema=" + schema
	}
	return url + "?schema=" + schema
}

func TestSplitURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, url, schema string }{
		{"postgres://u@h/db", "postgres://u@h/db", ""},
		{"postgres://u@h/db?schema=bank", "postgres://u@h/db", "bank"},
		{"postgresql://u:p@h:5433/db?sslmode=disable&schema=s1&application_name=x", "postgresql://u:p@h:5433/db?sslmode=disable&application_name=x", "s1"},
		{"postgres:///db?host=/tmp/sock&schema=x", "postgres:///db?host=/tmp/sock", "x"},
	}
	for _, tt := range tests {
		u, s, err := postgres.SplitURL(tt.in)
		require.NoError(t, err)
		require.Equal(t, tt.url, u)
		require.Equal(t, tt.schema, s)
	}
}

func TestOpenErrorsAreTypedAndRedacted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := eventstore.Open(ctx, "postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=2", nil)
	require.ErrorIs(t, err, eventstore.ErrUnavailable)
	require.NotContains(t, err.Error(), "s3cret")
	require.True(t, errors.Is(err, eventstore.ErrUnavailable))
}

// TestMigration4QuarantinesInvisibleEvents upgrades a store of schema
// version 3 that holds events at positions <= 0, as the Freeze/Unfreeze
// race of the old fast path left them (issue 17): migration 4 moves them to
// events_quarantine, their keys become free, and the new constraint refuses
// any position <= 0 from then on.
func TestMigration4QuarantinesInvisibleEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	s, err := eventstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	_, err = s.SaveEvents(ctx, []eventstore.Event{{AggregateID: "a", AggregateVersion: 1, Type: "T"}, {AggregateID: "a", AggregateVersion: 2, Type: "T"}})
	require.NoError(t, err)
	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: int(migrations.Latest(postgres.EngineName)) - 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, st.Version)

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload)
		VALUES (-1, 'ghost', 1, 'T', 5, '{"n":1}'), (0, 'ghost', 2, 'T', 6, '{"n":2}')`)
	require.NoError(t, err, "schema 3 has no constraint on positions")
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: "ghost", AggregateVersion: 1, Type: "T"})
	require.Error(t, err, "version 3 store: migrations pending, or the invisible event's key is taken")

	require.NoError(t, s.Init(ctx))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE position <= 0`).Scan(&n))
	require.Zero(t, n)
	rows, err := pool.Query(ctx, `SELECT position, aggregate_id, aggregate_version, payload::text FROM events_quarantine ORDER BY position`)
	require.NoError(t, err)
	type row struct {
		pos     int64
		id      string
		version int64
		payload string
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.pos, &x.id, &x.version, &x.payload)
	})
	require.NoError(t, err)
	require.Equal(t, []row{{-1, "ghost", 1, `{"n":1}`}, {0, "ghost", 2, `{"n":2}`}}, got)

	e, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "ghost", AggregateVersion: 1, Type: "T"})
	require.NoError(t, err, "the quarantined event's key is free again")
	require.EqualValues(t, 3, e.Position)
	d, err := s.Describe(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 3, d.EventCount)

	_, err = pool.Exec(ctx, `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES (0, 'b', 1, 'T', 1, '{}')`)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "23514", pe.Code)
	require.Equal(t, "events_position_positive", pe.ConstraintName)

	// Down keeps the quarantine; up again keeps it too.
	_, err = s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: 1})
	require.NoError(t, err)
	require.NoError(t, s.Init(ctx))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events_quarantine`).Scan(&n))
	require.Equal(t, 2, n)
	require.NoError(t, s.Drop(ctx))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n))
	require.Zero(t, n, "Drop removes events_quarantine with the rest")
}

// TestFreezeHoldsInTheDatabase: an INSERT into a frozen store's events
// from outside the store (another tool, raw SQL, an older esctl) fails in
// the database itself, in a schema of its own too; the store's own
// maintenance import into the frozen store still goes in; and migration 6
// counts the aggregates of a store it upgrades, then the writes (appends,
// COPY, raw inserts) keep the count.
func TestFreezeHoldsInTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.PostgresURL(t)
	s, err := eventstore.Open(ctx, withSchema(url, "frozen_s"), nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Init(ctx))
	_, err = s.SaveEvents(ctx, []eventstore.Event{{AggregateID: "a", AggregateVersion: 1, Type: "T"}, {AggregateID: "a", AggregateVersion: 2, Type: "T"}, {AggregateID: "b", AggregateVersion: 1, Type: "T"}})
	require.NoError(t, err)

	st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: int(migrations.Latest(postgres.EngineName)) - 5})
	require.NoError(t, err)
	require.EqualValues(t, 5, st.Version)
	d, err := s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.AggregateCount, "counted on a store whose migrations are pending")
	require.NoError(t, s.Init(ctx))
	d, err = s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.AggregateCount, "backfilled by migration 6")

	// A connection whose search_path does not name the store's schema:
	// the trigger functions find their tables all the same.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	const raw = `INSERT INTO frozen_s.events (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES ($1, $2, 1, 'T', 5, '{}')`
	require.NoError(t, s.Freeze(ctx, "raw SQL test"))
	d, err = s.Describe(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "raw SQL test", d.FrozenReason)
	_, err = conn.Exec(ctx, raw, 4, "raw")
	require.ErrorContains(t, err, "esctl: the store is frozen")
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM frozen_s.events`).Scan(&n))
	require.Equal(t, 3, n, "the frozen store's events are unchanged")

	// The store's own maintenance import, 200 events (COPY), into the
	// frozen store.
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, `{"aggregateId":"c%d","aggregateVersion":1,"type":"T","timestamp":1,"payload":{}}`+"\n", i%50)
		_ = i
	}
	lines := strings.Split(strings.TrimSpace(in.String()), "\n")
	in.Reset()
	for i, l := range lines {
		in.WriteString(strings.Replace(l, `"aggregateVersion":1`, fmt.Sprintf(`"aggregateVersion":%d`, i/50+1), 1) + "\n")
	}
	res, err := transfer.ImportEvents(ctx, s, strings.NewReader(in.String()), &transfer.ImportOptions{Mode: transfer.MaintenanceManual})
	require.NoError(t, err)
	require.EqualValues(t, 200, res.Events)
	d, err = s.Describe(ctx, &eventstore.DescribeOptions{Stats: true})
	require.NoError(t, err)
	require.True(t, d.IsFrozen)
	require.EqualValues(t, 52, d.AggregateCount)
	var maintenance bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT maintenance FROM frozen_s.store_state`).Scan(&maintenance))
	require.False(t, maintenance, "the bypass is closed after the store's write")
	_, err = conn.Exec(ctx, raw, 204, "raw")
	require.ErrorContains(t, err, "esctl: the store is frozen", "still refused after the import")

	require.NoError(t, s.Unfreeze(ctx))
	_, err = conn.Exec(ctx, raw, 204, "raw")
	require.NoError(t, err, "an unfrozen store takes the insert")
	require.NoError(t, conn.QueryRow(ctx, `SELECT aggregate_count FROM frozen_s.store_state`).Scan(&n))
	require.Equal(t, 53, n, "the raw insert was counted by the trigger")

	require.NoError(t, s.Drop(ctx))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'frozen_s'`).Scan(&n))
	require.Zero(t, n, "Drop removed the trigger functions and the schema")
}
