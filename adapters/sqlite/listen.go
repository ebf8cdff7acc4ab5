package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/esctl/esctl/internal/driver"
)

var _ driver.Listener = (*Dialect)(nil)

// ListenInterval is how often a Store's subscriptions look, on a connection
// of their own, whether another connection (another process, another Store)
// committed to the database: PRAGMA data_version, which reads the WAL
// index's header in shared memory and no table. A commit of another process
// reaches a subscription at the end of the store within about this long
// (its own Store's commits wake it at once).
const ListenInterval = 5 * time.Millisecond

// listenRetry is the wait before the listening connection is opened again
// after an error.
const listenRetry = time.Second

// errNoFile: an in-memory or temporary database is private to its
// connection; no other process writes to it.
var errNoFile = errors.New("sqlite: the database has no file, so no other process writes to it")

// Listen implements driver.Listener for SQLite, which has no notifications:
// on a read-only connection of its own it reads PRAGMA data_version every
// ListenInterval and calls wake when the value changed, that is when
// another connection committed since the last look. A read transaction
// lasts one statement, so the listener holds back no checkpoint. wake is
// also called after each (re)opening of the connection. Polling of the
// events table stays the truth behind it.
func (d *Dialect) Listen(ctx context.Context, wake func()) error {
	var path string
	if err := d.rdb.QueryRowContext(ctx, databaseListSQL).Scan(&path); err != nil {
		return interpretError(err)
	}
	if path == "" {
		return errNoFile
	}
	db, err := sql.Open("sqlite", DSN(path, true))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	tick := time.NewTicker(ListenInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		if err := watchDataVersion(ctx, db, tick.C, wake); err != nil && ctx.Err() == nil {
			// The file is unreadable for now (a disk error, a
			// permission change): try again later; polling goes on.
			select {
			case <-ctx.Done():
			case <-time.After(listenRetry):
			}
		}
	}
	return nil
}

// watchDataVersion reads data_version on one connection at every tick and
// wakes when it changed, and once at the start, until ctx ends or a read
// fails.
func watchDataVersion(ctx context.Context, db *sql.DB, tick <-chan time.Time, wake func()) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, dataVersionSQL)
	if err != nil {
		return err
	}
	defer stmt.Close()
	var last int64
	for first := true; ; first = false {
		var v int64
		if err := stmt.QueryRowContext(ctx).Scan(&v); err != nil {
			return err
		}
		if first || v != last {
			wake()
			last = v
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}
