package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
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
	pgSetStateSQL      = `UPDATE store_state SET last_position = $1, event_count = $1 WHERE id = 1`
	pgVacuumSQL        = `VACUUM (ANALYZE) events`
	pgCheckpointSQL    = `CHECKPOINT`
	pgVersionSQL       = `SHOW server_version`
	pgCeilingSeqSQL    = `CREATE SEQUENCE IF NOT EXISTS bench_ceiling_position`
	pgCeilingCheckSQL  = `SELECT count(*), count(*) FILTER (WHERE payload::text <> $1) FROM events`
	pgCreateDBSQL      = `CREATE DATABASE %s TEMPLATE template0`
	pgDropDBSQL        = `DROP DATABASE IF EXISTS %s WITH (FORCE)`
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

// bulkLoad copies the events into the table (COPY, one transaction), sets
// the state row, then VACUUM ANALYZE (statistics, hint bits, visibility
// map) and CHECKPOINT, so that the read benchmarks do not pay for the load.
func (c *pgCluster) bulkLoad(ctx context.Context, url string, events iter.Seq[eventstore.StoredEvent], n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		next, stop := iter.Pull(events)
		defer stop()
		copied, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromFunc(func() ([]any, error) {
			e, ok := next()
			if !ok {
				return nil, nil
			}
			return []any{e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)}, nil
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
	if err != nil {
		return err
	}
	for _, sql := range []string{pgVacuumSQL, pgCheckpointSQL} {
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
