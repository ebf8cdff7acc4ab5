package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// BeginIncremental implements driver.Driver.
func (d *Dialect) BeginIncremental(ctx context.Context, p *driver.BeginIncrementalParams) error {
	_, err := d.pool.Exec(ctx, d.q(beginIncrementalSQL), p.ID, p.Now)
	return interpretError(err)
}

// PushIncremental implements driver.Driver: COPY into the staging
// table while holding the import's row in share mode.
func (d *Dialect) PushIncremental(ctx context.Context, p *driver.PushIncrementalParams) (bool, error) {
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
		es := d.sql()
		if !es.meta && driver.AnyEventMetadata(p.Events) {
			return driver.ErrNoMetadata()
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{d.schema, stagedTable}, es.stagedColumns, stagedRows(es, p))
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

// RollbackIncremental implements driver.Driver.
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

// ListIncremental implements driver.Driver.
func (d *Dialect) ListIncremental(ctx context.Context) ([]estype.IncrementalImportInfo, error) {
	rows, err := d.pool.Query(ctx, d.q(listIncrementalSQL))
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.IncrementalFields)
	return out, interpretError(err)
}

// stagedRows are the rows COPY stages for p.
func stagedRows(es *eventSQL, p *driver.PushIncrementalParams) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(p.Events), func(i int) ([]any, error) {
		e := &p.Events[i]
		row := []any{p.ID, e.AggregateID, e.Type, e.Timestamp, string(e.Payload)}
		if es.meta {
			var m any
			if e.Metadata != nil {
				m = string(e.Metadata)
			}
			row = append(row, m)
		}
		return row, nil
	})
}
