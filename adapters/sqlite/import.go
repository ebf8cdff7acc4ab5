package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/esctl/esctl/eventstore"
)

// ImportEvents implements eventstore.Dialect (see eventstore.ImportEventsParams).
// Rows are inserted one by one with a prepared statement; SQLite reports a
// unique violation on the row that causes it, which gives the conflicting
// index directly, and the whole batch is then rolled back.
//
// The rows are inserted under a context without a Done channel: with one,
// modernc.org/sqlite starts a goroutine per statement to watch it (a
// million of them for a million events). ctx is checked every
// importCancelRows rows instead: a cancelled batch rolls back, as an
// interrupted statement would.
func (d *Dialect) ImportEvents(ctx context.Context, p *eventstore.ImportEventsParams) (*eventstore.ImportEventsResult, error) {
	res := &eventstore.ImportEventsResult{Conflict: -1}
	errConflict := errors.New("conflict")
	err := d.write(ctx, func(c *wconn) error {
		_, last, err := lockedState(ctx, c)
		if err != nil {
			return err
		}
		res.LastPosition = last
		if n := len(p.Events); n > 0 {
			if p.Target == eventstore.ImportIntoEvents && p.Events[0].Position <= last {
				res.Advanced = true
				return nil
			}
			q := importIntoEventsSQL
			if p.Target == eventstore.ImportIntoStaging {
				q = importIntoStagingSQL
			}
			rowCtx := context.WithoutCancel(ctx)
			for i := range p.Events {
				if i%importCancelRows == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				e := &p.Events[i]
				if _, err := c.ExecContext(rowCtx, q, e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
					if errors.Is(interpretError(err), eventstore.ErrConflict) {
						res.Conflict = i
						return errConflict // roll the batch back
					}
					return err
				}
			}
			if p.Target == eventstore.ImportIntoEvents {
				if _, err := c.ExecContext(ctx, importAdvanceSQL, p.Events[n-1].Position, n); err != nil {
					return err
				}
			}
		}
		return d.finishImportTx(ctx, c, p.Checkpoint, p.Unfreeze, p.DeleteSnapshots)
	})
	if err != nil && !errors.Is(err, errConflict) {
		return nil, err
	}
	return res, nil
}

// importCancelRows is how often ImportEvents checks its context.
const importCancelRows = 1024

// finishImportTx writes the checkpoint and the optional state changes of an
// import transaction.
func (d *Dialect) finishImportTx(ctx context.Context, c *wconn, cp *eventstore.ImportCheckpoint, unfreeze, deleteSnapshots bool) error {
	if cp != nil {
		if _, err := c.ExecContext(ctx, upsertCheckpointSQL, cp.SourceID, cp.Kind, cp.Mode, cp.Froze, cp.BasePosition,
			cp.ByteOffset, cp.Line, cp.Events, cp.LastPosition, cp.HashState, cp.Done, cp.UpdatedAt); err != nil {
			return err
		}
	}
	if unfreeze {
		if _, err := c.ExecContext(ctx, unfreezeSQL); err != nil {
			return err
		}
	}
	if deleteSnapshots {
		if _, err := c.ExecContext(ctx, deleteSnapshotsSQL); err != nil {
			return err
		}
	}
	return nil
}

// SwapStaging implements eventstore.Dialect.
func (d *Dialect) SwapStaging(ctx context.Context, p *eventstore.SwapStagingParams) error {
	return d.write(ctx, func(c *wconn) error {
		if _, _, err := lockedState(ctx, c); err != nil {
			return err
		}
		for _, q := range []string{swapDeleteEventsSQL, swapMoveSQL, clearStagingSQL, swapStateSQL} {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return d.finishImportTx(ctx, c, p.Checkpoint, p.Unfreeze, true)
	})
}

// AbortImport implements eventstore.Dialect.
func (d *Dialect) AbortImport(ctx context.Context, p *eventstore.AbortImportParams) error {
	return d.write(ctx, func(c *wconn) error {
		if _, _, err := lockedState(ctx, c); err != nil {
			return err
		}
		var qs []string
		if p.ClearStaging {
			qs = append(qs, clearStagingSQL)
		}
		if p.DeleteEvents {
			qs = append(qs, deleteEventsSQL, resetEventStateSQL)
		}
		if p.Unfreeze {
			qs = append(qs, unfreezeSQL)
		}
		for _, q := range qs {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		_, err := c.ExecContext(ctx, deleteCheckpointSQL, p.SourceID)
		return err
	})
}

// ImportSecrets implements eventstore.Dialect.
func (d *Dialect) ImportSecrets(ctx context.Context, p *eventstore.ImportSecretsParams) (*eventstore.ImportSecretsResult, error) {
	res := &eventstore.ImportSecretsResult{Conflict: -1}
	errConflict := errors.New("conflict")
	err := d.write(ctx, func(c *wconn) error {
		if _, _, err := lockedState(ctx, c); err != nil {
			return err
		}
		var next int64
		if err := c.QueryRowContext(ctx, nextSecretIdxSQL).Scan(&next); err != nil {
			return err
		}
		deleted := 0
		for i, sec := range p.Secrets {
			idx := sec.Idx
			if idx < 0 {
				idx = next
			}
			var one int
			err := c.QueryRowContext(ctx, secretIdxUsedSQL, idx).Scan(&one)
			if err == nil {
				res.Conflict = i
				return errConflict
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			var v any
			if sec.Secret != nil {
				v = *sec.Secret
			} else {
				deleted++
			}
			if _, err := c.ExecContext(ctx, importSecretSQL, idx, sec.ID, v); err != nil {
				if errors.Is(interpretError(err), eventstore.ErrSecretExists) {
					res.Conflict = i
					return errConflict
				}
				return err
			}
			next = max(next, idx+1)
		}
		if n := len(p.Secrets); n > 0 {
			if _, err := c.ExecContext(ctx, importSecretCountSQL, n, deleted); err != nil {
				return err
			}
		}
		return d.finishImportTx(ctx, c, p.Checkpoint, false, false)
	})
	if err != nil && !errors.Is(err, errConflict) {
		return nil, err
	}
	return res, nil
}

// Checkpoint implements eventstore.Dialect.
func (d *Dialect) Checkpoint(ctx context.Context, sourceID string) (*eventstore.ImportCheckpoint, error) {
	rows, err := d.rdb.QueryContext(ctx, getCheckpointSQL, sourceID)
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
	rows, err := d.rdb.QueryContext(ctx, listCheckpointsSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	return scanCheckpoints(rows)
}

func scanCheckpoints(rows *sql.Rows) ([]eventstore.ImportCheckpoint, error) {
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
