package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
)

var errConflict = errors.New("conflict")

// ImportEvents implements eventstore.Dialect (see eventstore.ImportEventsParams).
// The batch goes in with COPY; if COPY hits the unique key the transaction
// rolls back and a second query finds the first conflicting row.
func (d *Dialect) ImportEvents(ctx context.Context, p *eventstore.ImportEventsParams) (*eventstore.ImportEventsResult, error) {
	res := &eventstore.ImportEventsResult{Conflict: -1}
	table := eventsTable
	if p.Target == eventstore.ImportIntoStaging {
		table = stagingTable
	}
	err := d.bulkWrite(ctx, func(tx pgx.Tx, _ bool, last int64) error {
		res.LastPosition = last
		n := len(p.Events)
		if n > 0 {
			if p.Target == eventstore.ImportIntoEvents && p.Events[0].Position <= last {
				res.Advanced = true
				return nil
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{d.schema, table}, copyColumns, &copyEvents{events: p.Events})
			if err != nil {
				if isUniqueViolation(err) {
					return errConflict
				}
				return err
			}
			if p.Target == eventstore.ImportIntoEvents {
				if _, err := tx.Exec(ctx, d.q(importAdvanceSQL), p.Events[n-1].Position, int64(n)); err != nil {
					return err
				}
			}
		}
		return d.finishImportTx(ctx, tx, p.Checkpoint, p.Unfreeze, p.DeleteSnapshots)
	})
	if errors.Is(err, errConflict) {
		res.Conflict, err = d.conflictIndex(ctx, table, p.Events)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// copyEvents is the pgx.CopyFromSource of an import batch. Its row is one
// slice of pointers into the current event, reused for every row, so that
// COPY encodes the batch without allocating per row.
type copyEvents struct {
	events  []eventstore.StoredEvent
	next    int
	payload []byte // the current payload as []byte: pgx sends it as the json text
	row     []any
}

var _ pgx.CopyFromSource = (*copyEvents)(nil)

func (c *copyEvents) Next() bool {
	c.next++
	return c.next <= len(c.events)
}

func (c *copyEvents) Values() ([]any, error) {
	e := &c.events[c.next-1]
	c.payload = e.Payload
	if c.row == nil {
		c.row = make([]any, len(copyColumns))
	}
	c.row[0], c.row[1], c.row[2], c.row[3], c.row[4], c.row[5] = &e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &c.payload
	return c.row, nil
}

func (c *copyEvents) Err() error { return nil }

// conflictIndex returns the index of the first event whose (aggregate id,
// version) is in table.
func (d *Dialect) conflictIndex(ctx context.Context, table string, events []eventstore.StoredEvent) (int, error) {
	ids := make([]string, len(events))
	versions := make([]int64, len(events))
	for i, e := range events {
		ids[i], versions[i] = e.AggregateID, e.AggregateVersion
	}
	var idx *int64
	if err := d.pool.QueryRow(ctx, d.q(fmt.Sprintf(conflictIndexSQL, table)), ids, versions).Scan(&idx); err != nil {
		return 0, interpretError(err)
	}
	if idx == nil {
		return 0, errors.New("postgres: a batch hit the unique key but no conflicting row was found")
	}
	return int(*idx), nil
}

// FirstStoredPair implements eventstore.Dialect.
func (d *Dialect) FirstStoredPair(ctx context.Context, events []eventstore.StoredEvent) (int, error) {
	if len(events) == 0 {
		return -1, nil
	}
	ids := make([]string, len(events))
	versions := make([]int64, len(events))
	for i, e := range events {
		ids[i], versions[i] = e.AggregateID, e.AggregateVersion
	}
	var idx *int64
	if err := d.pool.QueryRow(ctx, d.q(fmt.Sprintf(conflictIndexSQL, eventsTable)), ids, versions).Scan(&idx); err != nil {
		return 0, interpretError(err)
	}
	if idx == nil {
		return -1, nil
	}
	return int(*idx), nil
}

// finishImportTx writes the checkpoint and the optional state changes of an
// import transaction.
func (d *Dialect) finishImportTx(ctx context.Context, tx pgx.Tx, cp *eventstore.ImportCheckpoint, unfreeze, deleteSnapshots bool) error {
	b := &pgx.Batch{}
	if cp != nil {
		hs := cp.HashState
		if hs == nil {
			hs = []byte{}
		}
		b.Queue(d.q(upsertCheckpointSQL), cp.SourceID, cp.Kind, cp.Mode, cp.Froze, cp.BasePosition,
			cp.ByteOffset, cp.Line, cp.Events, cp.LastPosition, hs, cp.Done, cp.UpdatedAt)
	}
	if unfreeze {
		b.Queue(d.q(unfreezeSQL))
	}
	if deleteSnapshots {
		b.Queue(d.q(deleteSnapshotsSQL))
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// SwapStaging implements eventstore.Dialect. DELETE (not TRUNCATE, which is
// not MVCC-safe) keeps concurrent readers' snapshots intact.
func (d *Dialect) SwapStaging(ctx context.Context, p *eventstore.SwapStagingParams) error {
	return d.bulkWrite(ctx, func(tx pgx.Tx, _ bool, _ int64) error {
		b := &pgx.Batch{}
		for _, q := range []string{deleteEventsSQL, swapMoveSQL, clearStagingSQL, swapStateSQL} {
			b.Queue(d.q(q))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		return d.finishImportTx(ctx, tx, p.Checkpoint, p.Unfreeze, true)
	})
}

// AbortImport implements eventstore.Dialect.
func (d *Dialect) AbortImport(ctx context.Context, p *eventstore.AbortImportParams) error {
	return d.bulkWrite(ctx, func(tx pgx.Tx, _ bool, _ int64) error {
		b := &pgx.Batch{}
		if p.ClearStaging {
			b.Queue(d.q(clearStagingSQL))
		}
		if p.DeleteEvents {
			b.Queue(d.q(deleteEventsSQL))
			b.Queue(d.q(resetEventStateSQL))
		}
		if p.Unfreeze {
			b.Queue(d.q(unfreezeSQL))
		}
		b.Queue(d.q(deleteCheckpointSQL), p.SourceID)
		return tx.SendBatch(ctx, b).Close()
	})
}

// ImportSecrets implements eventstore.Dialect.
func (d *Dialect) ImportSecrets(ctx context.Context, p *eventstore.ImportSecretsParams) (*eventstore.ImportSecretsResult, error) {
	res := &eventstore.ImportSecretsResult{Conflict: -1}
	err := d.bulkWrite(ctx, func(tx pgx.Tx, _ bool, _ int64) error {
		n := len(p.Secrets)
		if n > 0 {
			var next int64
			if err := tx.QueryRow(ctx, d.q(nextSecretIdxSQL)).Scan(&next); err != nil {
				return err
			}
			idxs := make([]int64, n)
			ids := make([]string, n)
			values := make([]*string, n)
			deleted := int64(0)
			for i, s := range p.Secrets {
				idxs[i], ids[i], values[i] = s.Idx, s.ID, s.Secret
				if s.Idx < 0 {
					idxs[i] = next
				}
				next = max(next, idxs[i]+1)
				if s.Secret == nil {
					deleted++
				}
			}
			var conflict *int64
			if err := tx.QueryRow(ctx, d.q(secretConflictSQL), ids, idxs).Scan(&conflict); err != nil {
				return err
			}
			if conflict != nil {
				res.Conflict = int(*conflict)
				return errConflict
			}
			b := &pgx.Batch{}
			b.Queue(d.q(importSecretsSQL), idxs, ids, values)
			b.Queue(d.q(importSecretCountSQL), int64(n), deleted)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return d.finishImportTx(ctx, tx, p.Checkpoint, false, false)
	})
	if err != nil && !errors.Is(err, errConflict) {
		return nil, err
	}
	return res, nil
}

// Checkpoint implements eventstore.Dialect.
func (d *Dialect) Checkpoint(ctx context.Context, sourceID string) (*eventstore.ImportCheckpoint, error) {
	rows, err := d.pool.Query(ctx, d.q(getCheckpointSQL), sourceID)
	if err != nil {
		return nil, interpretError(err)
	}
	cps, err := scanCheckpoints(rows)
	if err != nil || len(cps) == 0 {
		return nil, err
	}
	return &cps[0], nil
}

// ListCheckpoints implements eventstore.Dialect.
func (d *Dialect) ListCheckpoints(ctx context.Context) ([]eventstore.ImportCheckpoint, error) {
	rows, err := d.pool.Query(ctx, d.q(listCheckpointsSQL))
	if err != nil {
		return nil, interpretError(err)
	}
	return scanCheckpoints(rows)
}

func scanCheckpoints(rows pgx.Rows) ([]eventstore.ImportCheckpoint, error) {
	defer rows.Close()
	var out []eventstore.ImportCheckpoint
	for rows.Next() {
		var cp eventstore.ImportCheckpoint
		if err := rows.Scan(&cp.SourceID, &cp.Kind, &cp.Mode, &cp.Froze, &cp.BasePosition, &cp.ByteOffset, &cp.Line,
			&cp.Events, &cp.LastPosition, &cp.HashState, &cp.Done, &cp.UpdatedAt); err != nil {
			return nil, interpretError(err)
		}
		out = append(out, cp)
	}
	return out, interpretError(rows.Err())
}
