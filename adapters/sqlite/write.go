package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/esctl/esctl/eventstore"
)

// lockedState reads the frozen flag and last position; inside write's
// BEGIN IMMEDIATE transaction nobody else can change them until commit.
func lockedState(ctx context.Context, c *wconn) (frozen bool, last int64, err error) {
	err = c.QueryRowContext(ctx, lockedStateSQL).Scan(&frozen, &last)
	return frozen, last, err
}

// errRollback ends a write transaction without an error to report.
var errRollback = errors.New("rollback")

// Append implements eventstore.Dialect (see eventstore.AppendParams).
//
// One statement locks and reads the state row and advances it as if no
// request conflicted (UPDATE ... RETURNING; the transaction already holds
// SQLite's write lock). Events are then inserted one by one: the unique
// (aggregate id, version) key detects a conflict on the row that causes it,
// and SQLite rolls back only that statement, so a conflicting request's
// earlier rows are undone with a savepoint (taken only for multi-event
// requests) and the following requests take its positions. The state row is
// corrected only when something conflicted. A single-event append is thus
// BEGIN, UPDATE, INSERT, COMMIT.
func (d *Dialect) Append(ctx context.Context, p *eventstore.AppendParams) (*eventstore.AppendResult, error) {
	res := &eventstore.AppendResult{}
	total := int64(0)
	for _, r := range p.Requests {
		total += int64(len(r.Events))
	}
	err := d.write(ctx, func(c *wconn) error {
		var frozen bool
		var next int64
		if err := c.QueryRowContext(ctx, reserveSQL, total, total).Scan(&frozen, &next); err != nil {
			return err
		}
		if frozen {
			res.Frozen = true
			return errRollback
		}
		last := next - total
		res.FirstPosition = last + 1
		pos := last
		for i, r := range p.Requests {
			multi := len(r.Events) > 1
			if multi {
				if _, err := c.ExecContext(ctx, savepointSQL); err != nil {
					return err
				}
			}
			start := pos
			for _, e := range r.Events {
				pos++
				_, err := c.ExecContext(ctx, insertEventSQL, pos, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload))
				if err == nil {
					continue
				}
				if !errors.Is(interpretError(err), eventstore.ErrConflict) {
					return err
				}
				res.Conflicts = append(res.Conflicts, eventstore.AppendConflict{Request: i, AggregateID: e.AggregateID, AggregateVersion: e.AggregateVersion})
				pos = start
				if multi {
					if _, err := c.ExecContext(ctx, rollbackToSavepointSQL); err != nil {
						return err
					}
				}
				break
			}
			if multi {
				if _, err := c.ExecContext(ctx, releaseSavepointSQL); err != nil {
					return err
				}
			}
		}
		if written := pos - last; written != total {
			if _, err := c.ExecContext(ctx, correctStateSQL, pos, total-written); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRollback) {
		return nil, err
	}
	return res, nil
}

// SetFrozen implements eventstore.Dialect.
func (d *Dialect) SetFrozen(ctx context.Context, p *eventstore.SetFrozenParams) (*eventstore.SetFrozenResult, error) {
	res := &eventstore.SetFrozenResult{}
	err := d.write(ctx, func(c *wconn) error {
		if err := c.QueryRowContext(ctx, frozenStateSQL).Scan(&res.WasFrozen, &res.Reason); err != nil {
			return err
		}
		if res.WasFrozen == p.Frozen {
			return nil
		}
		_, err := c.ExecContext(ctx, setFrozenSQL, p.Frozen, p.Reason)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// insertEvent writes one event at the next position and advances the state.
func insertEvent(ctx context.Context, c *wconn, pos int64, e *eventstore.Event) error {
	if _, err := c.ExecContext(ctx, insertEventSQL, pos, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
		return err
	}
	_, err := c.ExecContext(ctx, advanceStateSQL, 1, 1)
	return err
}

// SetSecret implements eventstore.Dialect.
func (d *Dialect) SetSecret(ctx context.Context, p *eventstore.SetSecretParams) (*eventstore.SetSecretResult, error) {
	res := &eventstore.SetSecretResult{}
	err := d.write(ctx, func(c *wconn) error {
		frozen, last, err := lockedState(ctx, c)
		if err != nil {
			return err
		}
		if frozen {
			res.Frozen = true
			return nil
		}
		var one int
		switch err := c.QueryRowContext(ctx, secretIDUsedSQL, p.ID).Scan(&one); {
		case err == nil:
			res.Exists = true
			return nil
		case err != sql.ErrNoRows:
			return err
		}
		if err := c.QueryRowContext(ctx, nextSecretIdxSQL).Scan(&res.Idx); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, insertSecretSQL, res.Idx, p.ID, p.Secret); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, countSecretSQL); err != nil {
			return err
		}
		res.Position = last + 1
		return insertEvent(ctx, c, res.Position, &p.Event)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// DeleteSecret implements eventstore.Dialect. After a deletion it
// checkpoints the WAL (TRUNCATE) so that, with secure_delete, the value
// leaves the database files (best effort: an open reader can delay it).
func (d *Dialect) DeleteSecret(ctx context.Context, p *eventstore.DeleteSecretParams) (*eventstore.DeleteSecretResult, error) {
	res := &eventstore.DeleteSecretResult{}
	err := d.write(ctx, func(c *wconn) error {
		frozen, last, err := lockedState(ctx, c)
		if err != nil {
			return err
		}
		if frozen {
			res.Frozen = true
			return nil
		}
		r, err := c.ExecContext(ctx, tombstoneSecretSQL, p.ID)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return err
		}
		res.Deleted = true
		if _, err := c.ExecContext(ctx, countDeletedSQL); err != nil {
			return err
		}
		res.Position = last + 1
		return insertEvent(ctx, c, res.Position, &p.Event)
	})
	if err != nil {
		return nil, err
	}
	if res.Deleted {
		d.checkpoint(ctx)
	}
	return res, nil
}

// checkpoint copies the WAL into the database file and truncates it, on
// the writer connection (outside any transaction).
func (d *Dialect) checkpoint(ctx context.Context) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	w, release, err := d.writer(ctx)
	if err != nil {
		return
	}
	defer release()
	_, _ = w.c.ExecContext(ctx, checkpointSQL)
}

// PutSnapshot implements eventstore.Dialect.
func (d *Dialect) PutSnapshot(ctx context.Context, p *eventstore.PutSnapshotParams) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, putSnapshotSQL, p.Key, p.Content)
		return err
	})
}

// DeleteSnapshot implements eventstore.Dialect.
func (d *Dialect) DeleteSnapshot(ctx context.Context, p *eventstore.DeleteSnapshotParams) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, deleteSnapshotSQL, p.Key)
		return err
	})
}
