package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/eventstore"
)

// rawReader reads the events table with hand-written keyset queries: the
// limit of the read benchmarks. Each row is decoded into Go values, as any
// client would.
type rawReader interface {
	// page reads up to limit events after position after, only of type typ
	// when typ is not empty, and returns how many it read and the last
	// position read.
	page(ctx context.Context, typ string, after int64, limit int) (n int, last int64, err error)
	// aggregate reads up to limit events of one aggregate and returns how
	// many it read.
	aggregate(ctx context.Context, id string, limit int) (int, error)
	// dump reads the whole table in position order the engine's fastest
	// way (the export's limit) and returns how many rows it read.
	// PostgreSQL: COPY (SELECT ... ORDER BY position) TO STDOUT into w.
	// SQLite: one query, every row decoded into Go values (w unused).
	dump(ctx context.Context, w io.Writer) (int, error)
	Close() error
}

// rawEvent is a decoded row.
type rawEvent struct {
	Position, Version, Timestamp int64
	AggregateID, Type            string
	Payload                      []byte
}

// The raw queries; the same text on both engines but for placeholders.
const (
	rawColumns    = `SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM events WHERE `
	pgPageSQL     = rawColumns + `position > $1 ORDER BY position LIMIT $2`
	pgTypeSQL     = rawColumns + `type = $1 AND position > $2 ORDER BY position LIMIT $3`
	pgAggSQL      = rawColumns + `aggregate_id = $1 ORDER BY position LIMIT $2`
	sqlitePageSQL = rawColumns + `position > ? ORDER BY position LIMIT ?`
	sqliteTypeSQL = rawColumns + `type = ? AND position > ? ORDER BY position LIMIT ?`
	sqliteAggSQL  = rawColumns + `aggregate_id = ? ORDER BY position LIMIT ?`
)

// loadRaw writes n events into the empty, initialised store at url the raw
// way (the import's limit; see importCeiling), for a child process.
func loadRaw(ctx context.Context, engine, url string, events iter.Seq[eventstore.StoredEvent], n int) error {
	switch engine {
	case "postgres":
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return pgCopyEvents(ctx, conn, events, n)
	case "sqlite":
		return sqliteInsertEvents(ctx, url, events, n)
	}
	return fmt.Errorf("unknown engine %q", engine)
}

// openRawReader opens a raw reader on the store at url.
func openRawReader(ctx context.Context, engine, url string) (rawReader, error) {
	switch engine {
	case "postgres":
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return nil, err
		}
		return pgRaw{pool}, nil
	case "sqlite":
		return openSQLiteRaw(ctx, url)
	}
	return nil, fmt.Errorf("unknown engine %q", engine)
}

// pgRaw reads through pgx, which prepares and caches each statement.
type pgRaw struct{ pool *pgxpool.Pool }

func (r pgRaw) page(ctx context.Context, typ string, after int64, limit int) (int, int64, error) {
	var rows pgx.Rows
	var err error
	if typ == "" {
		rows, err = r.pool.Query(ctx, pgPageSQL, after, limit)
	} else {
		rows, err = r.pool.Query(ctx, pgTypeSQL, typ, after, limit)
	}
	if err != nil {
		return 0, 0, err
	}
	events, err := collectPG(rows, limit)
	return len(events), lastPosition(events, after), err
}

func (r pgRaw) aggregate(ctx context.Context, id string, limit int) (int, error) {
	rows, err := r.pool.Query(ctx, pgAggSQL, id, limit)
	if err != nil {
		return 0, err
	}
	events, err := collectPG(rows, limit)
	return len(events), err
}

func (r pgRaw) dump(ctx context.Context, w io.Writer) (int, error) {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	tag, err := c.Conn().PgConn().CopyTo(ctx, w, pgDumpSQL)
	return int(tag.RowsAffected()), err
}

func (r pgRaw) Close() error { r.pool.Close(); return nil }

func collectPG(rows pgx.Rows, limit int) ([]rawEvent, error) {
	defer rows.Close()
	return collect(rows, limit)
}

// rowScanner is what pgx.Rows and *sql.Rows have in common.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collect decodes every row into a fresh page, as a client would.
func collect(rows rowScanner, limit int) ([]rawEvent, error) {
	events := make([]rawEvent, 0, min(limit, 1024))
	for rows.Next() {
		var e rawEvent
		if err := rows.Scan(&e.Position, &e.AggregateID, &e.Version, &e.Type, &e.Timestamp, &e.Payload); err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// sqliteRaw reads through database/sql on a read-only pool opened like the
// store's reader (sqlite.DSN with query_only), with statements prepared
// once.
type sqliteRaw struct {
	db                 *sql.DB
	pageQ, typeQ, aggQ *sql.Stmt
}

func openSQLiteRaw(ctx context.Context, url string) (*sqliteRaw, error) {
	db, err := openSQLite(url, true)
	if err != nil {
		return nil, err
	}
	r := &sqliteRaw{db: db}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&r.pageQ, sqlitePageSQL}, {&r.typeQ, sqliteTypeSQL}, {&r.aggQ, sqliteAggSQL}} {
		if *p.stmt, err = db.PrepareContext(ctx, p.sql); err != nil {
			return nil, errors.Join(err, r.Close())
		}
	}
	return r, nil
}

func (r *sqliteRaw) page(ctx context.Context, typ string, after int64, limit int) (int, int64, error) {
	var rows *sql.Rows
	var err error
	if typ == "" {
		rows, err = r.pageQ.QueryContext(ctx, after, limit)
	} else {
		rows, err = r.typeQ.QueryContext(ctx, typ, after, limit)
	}
	if err != nil {
		return 0, 0, err
	}
	events, err := collectSQL(rows, limit)
	return len(events), lastPosition(events, after), err
}

func (r *sqliteRaw) aggregate(ctx context.Context, id string, limit int) (int, error) {
	rows, err := r.aggQ.QueryContext(ctx, id, limit)
	if err != nil {
		return 0, err
	}
	events, err := collectSQL(rows, limit)
	return len(events), err
}

func (r *sqliteRaw) dump(ctx context.Context, _ io.Writer) (n int, err error) {
	rows, err := r.db.QueryContext(ctx, sqliteDumpSQL)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	var e rawEvent
	for rows.Next() {
		if err := rows.Scan(&e.Position, &e.AggregateID, &e.Version, &e.Type, &e.Timestamp, &e.Payload); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func (r *sqliteRaw) Close() error {
	var errs []error
	for _, s := range []*sql.Stmt{r.pageQ, r.typeQ, r.aggQ} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(append(errs, r.db.Close())...)
}

func collectSQL(rows *sql.Rows, limit int) ([]rawEvent, error) {
	defer rows.Close()
	return collect(rows, limit)
}

func lastPosition(events []rawEvent, after int64) int64 {
	if len(events) == 0 {
		return after
	}
	return events[len(events)-1].Position
}
