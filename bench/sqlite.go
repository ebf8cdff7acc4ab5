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

// bulkLoad inserts every event with one prepared statement in one
// transaction, then checkpoints the WAL into the database file.
func (b *sqliteBackend) bulkLoad(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) (err error) {
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
	if _, err := conn.ExecContext(ctx, sqliteBulkCacheSQL); err != nil {
		return err
	}
	if err := inImmediateTx(ctx, conn, func(ctx context.Context) error { return insertAll(ctx, conn, events, n) }); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, sqliteCheckpointSQL)
	return err
}

func insertAll(ctx context.Context, conn *sql.Conn, events iter.Seq[eventstore.StoredEvent], n int) error {
	stmt, err := conn.PrepareContext(ctx, sqliteInsertEventSQL)
	if err != nil {
		return err
	}
	defer stmt.Close()
	// A context without a Done channel spares the driver a watcher
	// goroutine per statement; cancellation is checked every 10,000 rows.
	bg := context.WithoutCancel(ctx)
	count := 0
	for e := range events {
		if count%10_000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := stmt.ExecContext(bg, e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
			return fmt.Errorf("insert event %d: %w", e.Position, err)
		}
		count++
	}
	if count != n {
		return fmt.Errorf("inserted %d events, want %d", count, n)
	}
	_, err = conn.ExecContext(ctx, sqliteSetStateSQL, n, n)
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
