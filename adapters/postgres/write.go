package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/esctl/esctl/eventstore"
)

// isServerError reports whether err came from the server (a definite
// failure: the transaction did not commit) rather than from the connection.
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// discard makes sure a connection that may still be inside a transaction is
// not reused: pgxpool destroys connections released outside the idle state,
// and a ROLLBACK returns a healthy one to idle.
func discard(conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(ctx, rollbackSQL)
	}
}

// Append implements eventstore.Dialect (see eventstore.AppendParams).
//
// Round trip 1 sends BEGIN, the timeouts and pg_current_xact_id(): no lock
// is held yet, and nothing can commit if it fails. Round trip 2 pipelines
// the row lock, the group's insert (appendSQL) and COMMIT, so the lock is
// held for server time and the commit only. If round trip 2 loses its
// connection, the outcome is asked from pg_xact_status on a fresh one.
func (d *Dialect) Append(ctx context.Context, p *eventstore.AppendParams) (*eventstore.AppendResult, error) {
	n := 0
	for _, r := range p.Requests {
		n += len(r.Events)
	}
	reqs := make([]int32, 0, n)
	ids := make([]string, 0, n)
	versions := make([]int64, 0, n)
	types := make([]string, 0, n)
	timestamps := make([]int64, 0, n)
	payloads := make([]string, 0, n)
	for i, r := range p.Requests {
		for _, e := range r.Events {
			reqs = append(reqs, int32(i))
			ids = append(ids, e.AggregateID)
			versions = append(versions, e.AggregateVersion)
			types = append(types, e.Type)
			timestamps = append(timestamps, e.Timestamp)
			payloads = append(payloads, string(e.Payload))
		}
	}

	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, interpretError(err)
	}
	defer conn.Release()

	var xid string
	b1 := &pgx.Batch{}
	b1.Queue(beginSQL)
	b1.Queue(txSetupSQL, d.lockTO, d.stmtTO).QueryRow(func(row pgx.Row) error {
		var lockTO, stmtTO string
		return row.Scan(&lockTO, &stmtTO, &xid)
	})
	if err := conn.SendBatch(ctx, b1).Close(); err != nil {
		discard(conn)
		return nil, interpretError(err)
	}

	res := &eventstore.AppendResult{}
	var last int64
	var cReqs []int32
	var cIDs []string
	var cVersions []int64
	b2 := &pgx.Batch{}
	b2.Queue(d.q(lockStateSQL)).QueryRow(func(row pgx.Row) error {
		return row.Scan(&res.Frozen, &last)
	})
	b2.Queue(d.q(appendSQL), reqs, ids, versions, types, timestamps, payloads).QueryRow(func(row pgx.Row) error {
		return row.Scan(&res.Frozen, &last, &cReqs, &cIDs, &cVersions)
	})
	b2.Queue(commitSQL)
	err = conn.SendBatch(ctx, b2).Close()
	if err != nil {
		if isServerError(err) {
			discard(conn)
			return nil, interpretError(err)
		}
		// The connection failed after COMMIT may have been sent. Give the
		// broken connection back first: the check needs a fresh one, and
		// the pool may have no other.
		discard(conn)
		conn.Release()
		return d.resolveAppend(ctx, err, xid, p, ids, versions)
	}
	res.FirstPosition = last + 1
	for i := range cReqs {
		res.Conflicts = append(res.Conflicts, eventstore.AppendConflict{
			Request: int(cReqs[i]), AggregateID: cIDs[i], AggregateVersion: cVersions[i],
		})
	}
	return res, nil
}

// resolveAppend learns the outcome of an append whose connection broke
// while its COMMIT may have been in flight: pg_xact_status(xid) on a fresh
// connection says committed, aborted or in progress (polled until it ends).
// A committed append's positions are recovered from the rows it wrote
// (xmin is the writing transaction's id).
func (d *Dialect) resolveAppend(ctx context.Context, cause error, xid string, p *eventstore.AppendParams, ids []string, versions []int64) (*eventstore.AppendResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.resolveT)
	defer cancel()
	full, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", eventstore.ErrOutcomeUnknown, cause)
	}
	xid32 := strconv.FormatUint(full&0xffffffff, 10)
	// A dedicated connection: the pool may be full, and the broken
	// connection can hold its slot while pgxpool closes it.
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		var status *string
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig)
		}
		if err == nil {
			err = conn.QueryRow(ctx, xactStatusSQL, xid).Scan(&status)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w (checking the transaction's status: %v)", eventstore.ErrOutcomeUnknown, cause, err)
		case err != nil:
			// The server may be restarting: ask again.
		case status == nil:
			return nil, fmt.Errorf("%w: %w (pg_xact_status has no record of transaction %s)", eventstore.ErrOutcomeUnknown, cause, xid)
		case *status == "aborted":
			return nil, fmt.Errorf("%w: the connection broke and the append was rolled back: %w", eventstore.ErrUnavailable, cause)
		case *status == "committed":
			return d.committedAppend(ctx, conn, cause, xid32, p, ids, versions)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w (transaction %s still in progress)", eventstore.ErrOutcomeUnknown, cause, xid)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Dialect) committedAppend(ctx context.Context, conn *pgx.Conn, cause error, xid32 string, p *eventstore.AppendParams, ids []string, versions []int64) (*eventstore.AppendResult, error) {
	rows, err := conn.Query(ctx, d.q(resolveAppendSQL), ids, versions, xid32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (the append committed; reading its positions: %v)", eventstore.ErrOutcomeUnknown, cause, err)
	}
	type key struct {
		id string
		v  int64
	}
	written := map[key]int64{}
	for rows.Next() {
		var pos int64
		var k key
		if err := rows.Scan(&pos, &k.id, &k.v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: %w", eventstore.ErrOutcomeUnknown, err)
		}
		written[k] = pos
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", eventstore.ErrOutcomeUnknown, err)
	}
	res := &eventstore.AppendResult{FirstPosition: -1}
	for i, r := range p.Requests {
		first := r.Events[0]
		pos, ok := written[key{first.AggregateID, first.AggregateVersion}]
		if !ok {
			res.Conflicts = append(res.Conflicts, eventstore.AppendConflict{Request: i, AggregateID: first.AggregateID, AggregateVersion: first.AggregateVersion})
			continue
		}
		if res.FirstPosition < 0 || pos < res.FirstPosition {
			res.FirstPosition = pos
		}
	}
	if len(written) == 0 {
		// Nothing of ours was written: the store was frozen, or every
		// request conflicted.
		var frozen bool
		var last int64
		if err := conn.QueryRow(ctx, d.q(stateSQL)).Scan(&frozen, &last); err == nil && frozen {
			return &eventstore.AppendResult{Frozen: true}, nil
		}
	}
	return res, nil
}

// write runs fn in a transaction that holds the store-state row lock.
func (d *Dialect) write(ctx context.Context, fn func(tx pgx.Tx, frozen bool, last int64) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return interpretError(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var frozen bool
	var last int64
	var xid string
	b := &pgx.Batch{}
	b.Queue(txSetupSQL, d.lockTO, d.stmtTO).QueryRow(func(row pgx.Row) error {
		var a, c string
		return row.Scan(&a, &c, &xid)
	})
	b.Queue(d.q(lockStateSQL)).QueryRow(func(row pgx.Row) error { return row.Scan(&frozen, &last) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return interpretError(err)
	}
	if err := fn(tx, frozen, last); err != nil {
		return interpretError(err)
	}
	if err := tx.Commit(ctx); err != nil {
		if isServerError(err) {
			return interpretError(err)
		}
		return fmt.Errorf("%w: %w (transaction %s)", eventstore.ErrOutcomeUnknown, interpretError(err), xid)
	}
	return nil
}

// insertEvent writes one event at position pos and advances the state row.
func (d *Dialect) insertEvent(ctx context.Context, tx pgx.Tx, pos int64, e *eventstore.Event) error {
	b := &pgx.Batch{}
	b.Queue(d.q(insertEventSQL), pos, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload))
	b.Queue(d.q(advanceStateSQL), int64(1))
	return tx.SendBatch(ctx, b).Close()
}

// SetFrozen implements eventstore.Dialect.
func (d *Dialect) SetFrozen(ctx context.Context, p *eventstore.SetFrozenParams) (*eventstore.SetFrozenResult, error) {
	res := &eventstore.SetFrozenResult{}
	err := d.write(ctx, func(tx pgx.Tx, frozen bool, _ int64) error {
		if err := tx.QueryRow(ctx, d.q(frozenStateSQL)).Scan(&res.WasFrozen, &res.Reason); err != nil {
			return err
		}
		if res.WasFrozen == p.Frozen {
			return nil
		}
		_, err := tx.Exec(ctx, d.q(setFrozenSQL), p.Frozen, p.Reason)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// SetSecret implements eventstore.Dialect.
func (d *Dialect) SetSecret(ctx context.Context, p *eventstore.SetSecretParams) (*eventstore.SetSecretResult, error) {
	res := &eventstore.SetSecretResult{}
	err := d.write(ctx, func(tx pgx.Tx, frozen bool, last int64) error {
		if frozen {
			res.Frozen = true
			return nil
		}
		if err := tx.QueryRow(ctx, d.q(secretIDUsedSQL), p.ID).Scan(&res.Exists); err != nil || res.Exists {
			return err
		}
		if err := tx.QueryRow(ctx, d.q(insertSecretSQL), p.ID, p.Secret).Scan(&res.Idx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, d.q(countSecretSQL)); err != nil {
			return err
		}
		res.Position = last + 1
		return d.insertEvent(ctx, tx, res.Position, &p.Event)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// DeleteSecret implements eventstore.Dialect.
func (d *Dialect) DeleteSecret(ctx context.Context, p *eventstore.DeleteSecretParams) (*eventstore.DeleteSecretResult, error) {
	res := &eventstore.DeleteSecretResult{}
	err := d.write(ctx, func(tx pgx.Tx, frozen bool, last int64) error {
		if frozen {
			res.Frozen = true
			return nil
		}
		tag, err := tx.Exec(ctx, d.q(tombstoneSecretSQL), p.ID)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		res.Deleted = true
		if _, err := tx.Exec(ctx, d.q(countDeletedSQL)); err != nil {
			return err
		}
		res.Position = last + 1
		return d.insertEvent(ctx, tx, res.Position, &p.Event)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// PutSnapshot implements eventstore.Dialect.
func (d *Dialect) PutSnapshot(ctx context.Context, p *eventstore.PutSnapshotParams) error {
	_, err := d.pool.Exec(ctx, d.q(putSnapshotSQL), p.Key, p.Content)
	return interpretError(err)
}

// DeleteSnapshot implements eventstore.Dialect.
func (d *Dialect) DeleteSnapshot(ctx context.Context, p *eventstore.DeleteSnapshotParams) error {
	_, err := d.pool.Exec(ctx, d.q(deleteSnapshotSQL), p.Key)
	return interpretError(err)
}
