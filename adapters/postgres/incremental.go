package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/eventstore"
)

// BeginIncremental implements eventstore.Dialect.
func (d *Dialect) BeginIncremental(ctx context.Context, p *eventstore.BeginIncrementalParams) error {
	_, err := d.pool.Exec(ctx, d.q(beginIncrementalSQL), p.ID, p.Now)
	return interpretError(err)
}

// PushIncremental implements eventstore.Dialect: COPY into the staging
// table while holding the import's row in share mode.
func (d *Dialect) PushIncremental(ctx context.Context, p *eventstore.PushIncrementalParams) (bool, error) {
	found := false
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, d.q(shareIncrementalSQL), p.ID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if len(p.Events) == 0 {
			return nil
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{d.schema, stagedTable}, stagedColumns, pgx.CopyFromSlice(len(p.Events), func(i int) ([]any, error) {
			e := &p.Events[i]
			return []any{p.ID, e.AggregateID, e.Type, e.Timestamp, string(e.Payload)}, nil
		}))
		return err
	})
	if err != nil || !found || len(p.Events) == 0 {
		return found, interpretError(err)
	}
	// Outside the share-locked transaction: concurrent pushes holding the
	// row in share mode would deadlock upgrading it. A commit that closed
	// the import meanwhile makes this a no-op.
	_, err = d.pool.Exec(ctx, d.q(touchIncrementalSQL), p.ID, p.Now)
	return true, interpretError(err)
}

// CommitIncremental implements eventstore.Dialect (see
// eventstore.CommitIncrementalParams).
func (d *Dialect) CommitIncremental(ctx context.Context, p *eventstore.CommitIncrementalParams) (*eventstore.CommitIncrementalResult, error) {
	res := &eventstore.CommitIncrementalResult{}
	err := d.bulkWrite(ctx, func(tx pgx.Tx, frozen bool, last int64) error {
		var one int
		err := tx.QueryRow(ctx, d.q(lockIncrementalSQL), p.ID).Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			res.NotFound = true
			return nil
		case err != nil:
			return err
		case frozen:
			res.Frozen = true
			return nil
		}
		// The temporary table must exist before the batch is prepared.
		if _, err := tx.Exec(ctx, createWorkSQL); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(d.q(classifyStagedSQL), p.ID)
		b.Queue(d.q(markOlderSQL))
		var older int64
		var oldestID *string
		var oldestTS *int64
		b.Queue(d.q(workCountsSQL)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&res.Appended, &res.Duplicates, &older, &res.NewestTimestamp, &oldestID, &oldestTS)
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if older > 0 && !p.SkipOlder {
			res.OlderRefused, res.Appended, res.Duplicates = older, 0, 0
			res.OldestAggregateID, res.OldestTimestamp = *oldestID, *oldestTS
			return errRefused
		}
		res.Skipped = older
		b = &pgx.Batch{}
		if res.Appended > 0 {
			res.FirstPosition = last + 1
			b.Queue(d.q(appendWorkSQL), last)
			b.Queue(d.q(advanceStateSQL), res.Appended)
		}
		b.Queue(d.q(deleteStagedSQL), p.ID)
		b.Queue(d.q(deleteIncrementalSQL), p.ID)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil && !errors.Is(err, errRefused) {
		return nil, err
	}
	return res, nil
}

// errRefused rolls back a commit that refused older events.
var errRefused = errors.New("refused")

// RollbackIncremental implements eventstore.Dialect.
func (d *Dialect) RollbackIncremental(ctx context.Context, id string) (bool, error) {
	found := false
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, d.q(lockIncrementalSQL), id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		b := &pgx.Batch{}
		b.Queue(d.q(deleteStagedSQL), id)
		b.Queue(d.q(deleteIncrementalSQL), id)
		return tx.SendBatch(ctx, b).Close()
	})
	return found, interpretError(err)
}

// ListIncremental implements eventstore.Dialect.
func (d *Dialect) ListIncremental(ctx context.Context) ([]eventstore.IncrementalImport, error) {
	rows, err := d.pool.Query(ctx, d.q(listIncrementalSQL))
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []eventstore.IncrementalImport
	for rows.Next() {
		var ii eventstore.IncrementalImport
		if err := rows.Scan(&ii.ID, &ii.Events, &ii.CreatedAt, &ii.UpdatedAt); err != nil {
			return nil, interpretError(err)
		}
		out = append(out, ii)
	}
	return out, interpretError(rows.Err())
}
