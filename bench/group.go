package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The group-commit limit of save-64: clients submit one row each and wait
// for its commit, while one committer takes every row waiting and inserts
// them, one single-row INSERT each, in one transaction per round. It is
// what the store's group commit does, written by hand without store code:
// same table, same DSN, same payloads.

// groupRow is one client's row, acknowledged on done once committed (or
// not, with the round's error).
type groupRow struct {
	id      string
	payload string
	done    chan error
}

// commitRound writes one round's rows in one transaction.
type commitRound func(ctx context.Context, rows []*groupRow) error

// groupLoop runs clients goroutines for d, each submitting a row and
// waiting for its commit, and returns the committed rows per second.
func groupLoop(ctx context.Context, clients int, d time.Duration, payloads []string, commit commitRound) (float64, error) {
	queue := make(chan *groupRow, clients)
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { committer(cctx, queue, commit) })
	defer func() { stop(); wg.Wait() }()
	nonce := ceilingNonce.Add(1)
	dones := make([]chan error, clients)
	for c := range dones {
		dones[c] = make(chan error, 1)
	}
	return closedLoop(ctx, clients, d, func(ctx context.Context, client, i int) error {
		r := &groupRow{id: fmt.Sprintf("group-%d-%d-%d", nonce, client, i), payload: payloads[i%len(payloads)], done: dones[client]}
		select {
		case queue <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
		return <-r.done
	})
}

// committer commits rounds until ctx ends: it waits for a row, takes every
// other row waiting, commits them together and acknowledges each.
func committer(ctx context.Context, queue <-chan *groupRow, commit commitRound) {
	var rows []*groupRow
	for {
		rows = rows[:0]
		select {
		case <-ctx.Done():
			return
		case r := <-queue:
			rows = append(rows, r)
		}
	more:
		for {
			select {
			case r := <-queue:
				rows = append(rows, r)
			default:
				break more
			}
		}
		err := commit(context.WithoutCancel(ctx), rows)
		for _, r := range rows {
			r.done <- err
		}
	}
}

// groupCeiling on SQLite: one writer connection with the store's DSN;
// BEGIN IMMEDIATE, a prepared single-row INSERT per row, COMMIT.
func (b *sqliteBackend) groupCeiling(ctx context.Context, url string, clients int, d time.Duration) (rate float64, err error) {
	conn, done, err := writerConn(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, done()) }()
	stmt, err := conn.PrepareContext(ctx, sqliteCeilingInsertSQL)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	return groupLoop(ctx, clients, d, b.payloads, func(ctx context.Context, rows []*groupRow) error {
		return inImmediateTx(ctx, conn, func(ctx context.Context) error {
			now := time.Now().UnixMilli()
			for _, r := range rows {
				if _, err := stmt.ExecContext(ctx, r.id, now, r.payload); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// pgGroupInsertSQL is the ceiling's single-row INSERT with the row's id and
// payload as parameters (the position from the ceiling's sequence).
const pgGroupInsertSQL = `INSERT INTO events (position, aggregate_id, aggregate_version, type, timestamp, payload) ` +
	`VALUES (nextval('bench_ceiling_position'), $1, 1, 'CeilingInserted', $2, $3::json)`

// groupCeiling on PostgreSQL: one pgx connection; BEGIN, a single-row
// INSERT per row and COMMIT, sent as one pipelined batch per round (one
// round trip, as the store's append).
func (c *pgCluster) groupCeiling(ctx context.Context, url string, clients int, d time.Duration) (rate float64, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	if _, err := conn.Exec(ctx, pgCeilingSeqSQL); err != nil {
		return 0, err
	}
	payloads := c.payloads
	if len(payloads) == 0 {
		payloads = []string{c.ceilingPayload}
	}
	return groupLoop(ctx, clients, d, payloads, func(ctx context.Context, rows []*groupRow) error {
		var batch pgx.Batch
		batch.Queue("BEGIN")
		now := time.Now().UnixMilli()
		for _, r := range rows {
			batch.Queue(pgGroupInsertSQL, r.id, now, r.payload)
		}
		batch.Queue("COMMIT")
		return conn.SendBatch(ctx, &batch).Close()
	})
}

// groupCeilingMethod says how groupCeiling measures, for the report.
const groupCeilingMethod = "SaveEvent, 64 goroutines, group-commit limit: the clients' single-row INSERTs grouped by hand, one transaction per round " +
	"(a committer takes every row waiting; sqlite: BEGIN IMMEDIATE, prepared INSERTs, COMMIT on one writer connection; postgres: BEGIN, INSERTs, COMMIT pipelined on one pgx connection)"
