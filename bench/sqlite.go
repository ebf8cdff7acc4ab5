package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
)

// SQL the harness runs on SQLite itself: bulk loading and the limits.
const (
	sqliteInsertEventSQL = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?)`
	sqliteSetStateSQL    = `UPDATE store_state SET last_position = ?, event_count = ? WHERE id = 1`
	// The ceiling lets SQLite assign the position (the rowid: max + 1).
	sqliteCeilingInsertSQL = `INSERT INTO events (aggregate_id, aggregate_version, type, timestamp, payload) VALUES (?, 1, 'CeilingInserted', ?, ?)`
	sqliteBeginImmediate   = `BEGIN IMMEDIATE`
	sqliteCommit           = `COMMIT`
	sqliteRollback         = `ROLLBACK`
	sqliteBulkCacheSQL     = `PRAGMA cache_size = -262144` // 256 MiB, for the bulk load only
	sqliteCheckpointSQL    = `PRAGMA wal_checkpoint(TRUNCATE)`
	sqliteVersionSQL       = `SELECT sqlite_version()`
	sqliteDeleteAfterSQL   = `DELETE FROM events WHERE position > ?`
	sqliteAdvanceStateSQL  = `UPDATE store_state SET last_position = last_position + ?, event_count = event_count + ? WHERE id = 1`
	// The incremental import's limit stages its rows in a plain table of
	// the events' columns (no index) and appends them in position order.
	sqliteDropStagingSQL   = `DROP TABLE IF EXISTS bench_incremental`
	sqliteCreateStagingSQL = `CREATE TABLE bench_incremental (position INTEGER, aggregate_id TEXT, aggregate_version INTEGER, type TEXT, timestamp INTEGER, payload TEXT) STRICT`
	sqliteStageSQL         = `INSERT INTO bench_incremental (position, aggregate_id, aggregate_version, type, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?)`
	sqliteAppendStagingSQL = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) ` +
		`SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM bench_incremental ORDER BY position`
	// The export's limit: the whole table in position order, one query.
	sqliteDumpSQL = `SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM events ORDER BY position`
)

// sqliteBackend makes one SQLite file per database in dir.
type sqliteBackend struct {
	dir      string
	n        int
	payloads []string
}

func (b *sqliteBackend) createDatabase(_ context.Context, label string) (string, func() error, error) {
	b.n++
	path := filepath.Join(b.dir, fmt.Sprintf("%s-%d.db", label, b.n))
	drop := func() error {
		var errs []error
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return "sqlite://" + path, drop, nil
}

// openSQLite opens the file at a store URL with the store's settings
// (sqlite.DSN: WAL, synchronous=FULL, busy_timeout; query_only for readers).
func openSQLite(url string, readOnly bool) (*sql.DB, error) {
	path, err := sqlite.PathFromURL(url)
	if err != nil {
		return nil, err
	}
	return sql.Open("sqlite", sqlite.DSN(path, readOnly))
}

// openWriter opens the file the way the store's writer does: one connection.
func openWriter(url string) (*sql.DB, error) {
	db, err := openSQLite(url, false)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// writerConn opens the file at a store URL as the store's writer does and
// takes its one connection; done closes both.
func writerConn(ctx context.Context, url string) (conn *sql.Conn, done func() error, err error) {
	db, err := openWriter(url)
	if err != nil {
		return nil, nil, err
	}
	if conn, err = db.Conn(ctx); err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return conn, func() error { return errors.Join(conn.Close(), db.Close()) }, nil
}

// bulkLoad inserts every event with one prepared statement in one
// transaction (with a larger page cache than the store's), then checkpoints
// the WAL into the database file.
func (b *sqliteBackend) bulkLoad(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) (err error) {
	conn, done, err := writerConn(ctx, url)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, done()) }()
	if _, err := conn.ExecContext(ctx, sqliteBulkCacheSQL); err != nil {
		return err
	}
	if err := inImmediateTx(ctx, conn, func(ctx context.Context) error { return insertAll(ctx, conn, events, n) }); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, sqliteCheckpointSQL)
	return err
}

// sqliteInsertEvents inserts n events with one prepared statement in one
// transaction and sets the state row, with the store's settings (sqlite.DSN,
// one writer connection): the import limit.
func sqliteInsertEvents(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) error {
	_, err := sqliteTimedInsert(ctx, url, events, n)
	return err
}

// sqliteTimedInsert is sqliteInsertEvents, returning how long the
// transaction took (opening the connection excluded).
func sqliteTimedInsert(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) (d time.Duration, err error) {
	conn, done, err := writerConn(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, done()) }()
	start := time.Now()
	err = inImmediateTx(ctx, conn, func(ctx context.Context) error { return insertAll(ctx, conn, events, n) })
	return time.Since(start), err
}

func (b *sqliteBackend) importCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (time.Duration, error) {
	return sqliteTimedInsert(ctx, url, slices.Values(events), len(events))
}

// settle does nothing on SQLite: each database is its own file, and a
// COMMIT leaves nothing to flush later (synchronous=FULL).
func (b *sqliteBackend) settle(context.Context) error { return nil }

func insertAll(ctx context.Context, conn *sql.Conn, events iter.Seq[eventstore.StoredEvent], n int) error {
	count, err := insertRows(ctx, conn, sqliteInsertEventSQL, events)
	if err != nil {
		return err
	}
	if count != n {
		return fmt.Errorf("inserted %d events, want %d", count, n)
	}
	_, err = conn.ExecContext(ctx, sqliteSetStateSQL, n, n)
	return err
}

// insertRows inserts the events with the prepared statement query (whose
// parameters are the six columns of events) and returns how many it
// inserted.
func insertRows(ctx context.Context, conn *sql.Conn, query string, events iter.Seq[eventstore.StoredEvent]) (int, error) {
	stmt, err := conn.PrepareContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	// A context without a Done channel spares the driver a watcher
	// goroutine per statement; cancellation is checked every 10,000 rows.
	bg := context.WithoutCancel(ctx)
	count := 0
	for e := range events {
		if count%10_000 == 0 && ctx.Err() != nil {
			return count, ctx.Err()
		}
		if _, err := stmt.ExecContext(bg, e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
			return count, fmt.Errorf("insert event %d: %w", e.Position, err)
		}
		count++
	}
	return count, nil
}

// incrementalCeiling stages the events (with their final positions and
// versions) in a table of the store at url, then times one transaction
// appending them to events with INSERT ... SELECT and advancing the state
// row. The staging table is dropped afterwards.
func (b *sqliteBackend) incrementalCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (d time.Duration, err error) {
	db, err := openWriter(url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	for _, q := range []string{sqliteDropStagingSQL, sqliteCreateStagingSQL} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, err
		}
	}
	defer func() {
		if _, derr := conn.ExecContext(context.WithoutCancel(ctx), sqliteDropStagingSQL); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	err = inImmediateTx(ctx, conn, func(ctx context.Context) error {
		_, err := insertRows(ctx, conn, sqliteStageSQL, slices.Values(events))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("stage the incremental rows: %w", err)
	}
	n := int64(len(events))
	start := time.Now()
	err = inImmediateTx(ctx, conn, func(ctx context.Context) error {
		r, err := conn.ExecContext(ctx, sqliteAppendStagingSQL)
		if err != nil {
			return err
		}
		if got, err := r.RowsAffected(); err != nil || got != n {
			return errors.Join(err, fmt.Errorf("appended %d rows, want %d", got, n))
		}
		_, err = conn.ExecContext(ctx, sqliteAdvanceStateSQL, n, n)
		return err
	})
	return time.Since(start), err
}

// truncateStore deletes the events after position n, sets the state row
// back to n events and checkpoints the WAL: it undoes an incremental import
// into the read store between runs.
func (b *sqliteBackend) truncateStore(ctx context.Context, url string, n int) (err error) {
	db, err := openWriter(url)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = inImmediateTx(ctx, conn, func(ctx context.Context) error {
		if _, err := conn.ExecContext(ctx, sqliteDeleteAfterSQL, n); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, sqliteSetStateSQL, n, n)
		return err
	})
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, sqliteCheckpointSQL)
	return err
}

// inImmediateTx runs fn between BEGIN IMMEDIATE and COMMIT on conn, and
// rolls back when fn or COMMIT fails.
func inImmediateTx(ctx context.Context, conn *sql.Conn, fn func(ctx context.Context) error) error {
	if _, err := conn.ExecContext(ctx, sqliteBeginImmediate); err != nil {
		return err
	}
	err := fn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, sqliteCommit)
	}
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), sqliteRollback)
	}
	return err
}

func (b *sqliteBackend) ceilingMethod() string {
	return "Go loop of BEGIN IMMEDIATE; INSERT one row; COMMIT (same DSN as the store, one writer connection shared by the clients)"
}

// appendCeiling runs single-row write transactions from clients goroutines
// on one writer connection, as the store's writer does: SQLite has one
// writer at a time, and more connections would only add lock retries.
func (b *sqliteBackend) appendCeiling(ctx context.Context, url string, clients int, d time.Duration) (rate float64, err error) {
	db, err := openWriter(url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	nonce := ceilingNonce.Add(1)
	return closedLoop(ctx, clients, d, func(ctx context.Context, client, i int) error {
		// Like the store's writer, run the statements under a context
		// without a Done channel (closedLoop checks ctx between calls).
		ctx = context.WithoutCancel(ctx)
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		id := fmt.Sprintf("ceiling-%d-%d-%d", nonce, client, i)
		payload := b.payloads[i%len(b.payloads)]
		return inImmediateTx(ctx, conn, func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, sqliteCeilingInsertSQL, id, time.Now().UnixMilli(), payload)
			return err
		})
	})
}

func (b *sqliteBackend) version(ctx context.Context) (string, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	err = db.QueryRowContext(ctx, sqliteVersionSQL).Scan(&v)
	return v, err
}

// diskBytes is the database file and its WAL.
func (b *sqliteBackend) diskBytes(_ context.Context, url string) (int64, error) {
	path, err := sqlite.PathFromURL(url)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, err
		default:
			n += fi.Size()
		}
	}
	return n, nil
}

// settleStore copies the WAL into the database file and truncates it.
func (b *sqliteBackend) settleStore(ctx context.Context, url string) (err error) {
	db, err := openWriter(url)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	_, err = db.ExecContext(ctx, sqliteCheckpointSQL)
	return err
}
