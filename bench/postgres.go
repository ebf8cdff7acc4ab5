package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/testdb"
)

// clusterConf is appended to the throwaway cluster's postgresql.conf: the
// durability settings are PostgreSQL's defaults, spelled out because
// testdb's own test clusters turn them off.
var clusterConf = []string{
	"fsync = on",
	"synchronous_commit = on",
	"full_page_writes = on",
	"shared_buffers = 256MB",
	"max_wal_size = 4GB",
}

// SQL the harness runs on PostgreSQL itself: bulk loading and the limits.
const (
	pgSetStateSQL     = `UPDATE store_state SET last_position = $1, event_count = $1 WHERE id = 1`
	pgVacuumSQL       = `VACUUM (ANALYZE) events`
	pgCheckpointSQL   = `CHECKPOINT`
	pgVersionSQL      = `SHOW server_version`
	pgDatabaseSizeSQL = `SELECT pg_database_size(current_database())`
	pgCeilingSeqSQL   = `CREATE SEQUENCE IF NOT EXISTS bench_ceiling_position`
	pgCeilingCheckSQL = `SELECT count(*), count(*) FILTER (WHERE payload::text <> $1) FROM events`
	pgCreateDBSQL     = `CREATE DATABASE %s TEMPLATE template0`
	pgDropDBSQL       = `DROP DATABASE IF EXISTS %s WITH (FORCE)`
	pgDeleteAfterSQL  = `DELETE FROM events WHERE position > $1`
	pgAdvanceStateSQL = `UPDATE store_state SET last_position = last_position + $1, event_count = event_count + $1 WHERE id = 1`
	// Undoing an incremental import: events and the store's own staging
	// tables, whose rows the store's commit deleted.
	pgVacuumAfterUndoSQL = `VACUUM events, incremental_import_events, incremental_imports, store_state`
	// The incremental import's limit stages its rows in a plain table of
	// the events' columns (no index) and appends them in position order.
	pgStagingTable      = "bench_incremental"
	pgDropStagingSQL    = `DROP TABLE IF EXISTS bench_incremental`
	pgCreateStagingSQL  = `CREATE TABLE bench_incremental (LIKE events)`
	pgAnalyzeStagingSQL = `ANALYZE bench_incremental`
	pgAppendStagingSQL  = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) ` +
		`SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM bench_incremental ORDER BY position`
	// The export's limit: the whole table in position order, as COPY's
	// text format.
	pgDumpSQL          = `COPY (SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM events ORDER BY position) TO STDOUT`
	pgCeilingInsertSQL = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) ` +
		`SELECT n, 'ceiling-' || n, 1, 'CeilingInserted', %d, %s::json ` +
		`FROM (SELECT nextval('bench_ceiling_position') AS n) AS s`
)

var eventColumns = []string{"position", "aggregate_id", "aggregate_version", "type", "timestamp", "payload"}

// pgCluster is a throwaway PostgreSQL cluster with default durability.
type pgCluster struct {
	adminURL string
	stopFunc func()
	pgbench  *pgbench // nil: the Go loop measures the ceiling
	n        int
	// ceilingSQL inserts one row with ceilingPayload: the same statement
	// for pgbench and for the Go loop.
	ceilingSQL     string
	ceilingPayload string
	payloads       []string // the group-commit limit's, as the store's
}

// startPostgres starts the cluster through internal/testdb and finds
// pgbench according to setting (see the -pgbench flag).
func startPostgres(ctx context.Context, setting, dir string, payload string) (*pgCluster, error) {
	c := &pgCluster{
		ceilingSQL:     fmt.Sprintf(pgCeilingInsertSQL, baseTimestamp, quoteLiteral(payload)),
		ceilingPayload: payload,
	}
	pb, err := findPGBench(ctx, setting, dir, c.ceilingSQL)
	if err != nil {
		return nil, err
	}
	c.pgbench = pb
	c.adminURL, c.stopFunc, err = testdb.StartCluster(clusterConf)
	if err != nil {
		return nil, fmt.Errorf("start a throwaway PostgreSQL cluster: %w", err)
	}
	return c, nil
}

func (c *pgCluster) stop() {
	if c.stopFunc != nil {
		c.stopFunc()
		c.stopFunc = nil
	}
}

// adminExec runs one statement on a fresh connection to the maintenance
// database.
func (c *pgCluster) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func (c *pgCluster) createDatabase(ctx context.Context, label string) (string, func() error, error) {
	c.n++
	name := fmt.Sprintf("bench_%s_%d", label, c.n)
	ident := pgx.Identifier{name}.Sanitize()
	if err := c.adminExec(ctx, fmt.Sprintf(pgCreateDBSQL, ident)); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return c.adminExec(ctx, fmt.Sprintf(pgDropDBSQL, ident))
	}
	u, err := withDatabase(c.adminURL, name)
	if err != nil {
		return "", nil, errors.Join(err, drop())
	}
	return u, drop, nil
}

// withDatabase replaces the database of a postgres URL.
func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// bulkLoad copies the events into the table and sets the state row (one
// transaction: copyEvents), then runs VACUUM ANALYZE (statistics, hint
// bits, visibility map) and CHECKPOINT, so that the read benchmarks do not
// pay for the load.
func (c *pgCluster) bulkLoad(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pgCopyEvents(ctx, conn, events, n); err != nil {
		return err
	}
	for _, sql := range []string{pgVacuumSQL, pgCheckpointSQL} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// pgCopyEvents copies n events into the events table with COPY and sets
// the state row to match, in one transaction: the import limit, and the
// first step of the bulk load.
func pgCopyEvents(ctx context.Context, conn *pgx.Conn, events iter.Seq[eventstore.StoredEvent], n int) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		next, stop := iter.Pull(events)
		defer stop()
		copied, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromFunc(func() ([]any, error) {
			e, ok := next()
			if !ok {
				return nil, nil
			}
			// The payload as []byte: pgx sends it as the json text, as
			// the store's import does.
			return []any{e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, e.Payload}, nil
		}))
		if err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
		if copied != int64(n) {
			return fmt.Errorf("copied %d events, want %d", copied, n)
		}
		_, err = tx.Exec(ctx, pgSetStateSQL, n)
		return err
	})
}

// importCeiling copies the events into the empty store at url as
// pgCopyEvents does and returns how long that took (connecting excluded).
func (c *pgCluster) importCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	err = pgCopyEvents(ctx, conn, slices.Values(events), len(events))
	return time.Since(start), err
}

// settle checkpoints the cluster, so that the writes of one run (and the
// files of a dropped database) are not flushed during the next run.
func (c *pgCluster) settle(ctx context.Context) error {
	return c.adminExec(ctx, pgCheckpointSQL)
}

// incrementalCeiling stages the events (with their final positions and
// versions) in a table of the store at url, then times one transaction
// appending them to events with INSERT ... SELECT and advancing the state
// row. The staging table is dropped afterwards.
func (c *pgCluster) incrementalCeiling(ctx context.Context, url string, events []eventstore.StoredEvent) (d time.Duration, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{pgDropStagingSQL, pgCreateStagingSQL} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("%s: %w", sql, err)
		}
	}
	defer func() {
		if _, derr := conn.Exec(context.WithoutCancel(ctx), pgDropStagingSQL); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{pgStagingTable}, eventColumns, pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
		e := &events[i]
		return []any{e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, e.Payload}, nil
	}))
	if err != nil {
		return 0, fmt.Errorf("stage the incremental rows: %w", err)
	}
	if copied != int64(len(events)) {
		return 0, fmt.Errorf("staged %d rows, want %d", copied, len(events))
	}
	if _, err := conn.Exec(ctx, pgAnalyzeStagingSQL); err != nil {
		return 0, err
	}
	n := int64(len(events))
	start := time.Now()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, pgAppendStagingSQL)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != n {
			return fmt.Errorf("appended %d rows, want %d", tag.RowsAffected(), n)
		}
		_, err = tx.Exec(ctx, pgAdvanceStateSQL, n)
		return err
	})
	return time.Since(start), err
}

// truncateStore deletes the events after position n and sets the state row
// back to n events, then vacuums and checkpoints: it undoes an incremental
// import into the read store between runs.
func (c *pgCluster) truncateStore(ctx context.Context, url string, n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, pgDeleteAfterSQL, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, pgSetStateSQL, n)
		return err
	})
	if err != nil {
		return err
	}
	for _, sql := range []string{pgVacuumAfterUndoSQL, pgCheckpointSQL} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

func (c *pgCluster) ceilingMethod() string {
	if c.pgbench != nil {
		return fmt.Sprintf("%s: one-row INSERT per transaction (autocommit), same client count, tps without connection time", c.pgbench.version)
	}
	return "Go loop (pgbench not used): one-row INSERT per transaction (autocommit), one pgx connection per client"
}

// appendCeiling measures one-row autocommit INSERTs with pgbench, or with
// a Go loop of the same statement when pgbench is not used, then checks
// that the rows hold the intended payload (pgbench substitutes :names in
// scripts, and JSON is full of colons).
func (c *pgCluster) appendCeiling(ctx context.Context, url string, clients int, d time.Duration) (rate float64, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	if _, err := conn.Exec(ctx, pgCeilingSeqSQL); err != nil {
		return 0, err
	}
	if c.pgbench != nil {
		rate, err = c.pgbench.run(ctx, url, clients, d)
	} else {
		rate, err = c.goCeiling(ctx, url, clients, d)
	}
	if err != nil {
		return 0, err
	}
	var rows, wrong int64
	if err := conn.QueryRow(ctx, pgCeilingCheckSQL, c.ceilingPayload).Scan(&rows, &wrong); err != nil {
		return 0, err
	}
	if rows == 0 || wrong > 0 {
		return 0, fmt.Errorf("the ceiling wrote %d rows, %d of them with another payload than intended", rows, wrong)
	}
	return rate, nil
}

// goCeiling is the ceiling without pgbench: one connection per client, each
// running the ceiling INSERT in a loop.
func (c *pgCluster) goCeiling(ctx context.Context, url string, clients int, d time.Duration) (float64, error) {
	conns := make([]*pgx.Conn, 0, clients)
	defer func() {
		for _, conn := range conns {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for range clients {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return 0, err
		}
		conns = append(conns, conn)
	}
	return closedLoop(ctx, clients, d, func(ctx context.Context, client, _ int) error {
		_, err := conns[client].Exec(ctx, c.ceilingSQL)
		return err
	})
}

func (c *pgCluster) version(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	err = conn.QueryRow(ctx, pgVersionSQL).Scan(&v)
	return v, err
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on by default, so only quotes are doubled).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// diskBytes is pg_database_size of the database (tables, indexes, TOAST;
// not the cluster's WAL).
func (c *pgCluster) diskBytes(ctx context.Context, url string) (n int64, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	err = conn.QueryRow(ctx, pgDatabaseSizeSQL).Scan(&n)
	return n, err
}

// settleStore vacuums and analyzes events (what autovacuum would do in
// time) and checkpoints.
func (c *pgCluster) settleStore(ctx context.Context, url string) (err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	if _, err := conn.Exec(ctx, pgVacuumSQL); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, pgCheckpointSQL)
	return err
}
