package sqlite

import (
	"context"
	"database/sql"

	"github.com/esctl/esctl/eventstore"
)

// lockedState reads the frozen flag and last position; inside write's
// BEGIN IMMEDIATE transaction nobody else can change them until commit.
func lockedState(ctx context.Context, c *sql.Conn) (frozen bool, last int64, err error) {
	err = c.QueryRowContext(ctx, lockedStateSQL).Scan(&frozen, &last)
	return frozen, last, err
}

// Append implements eventstore.Dialect (see eventstore.AppendParams).
func (d *Dialect) Append(ctx context.Context, p *eventstore.AppendParams) (*eventstore.AppendResult, error) {
	res := &eventstore.AppendResult{}
	err := d.write(ctx, func(c *sql.Conn) error {
		frozen, last, err := lockedState(ctx, c)
		if err != nil {
			return err
		}
		if frozen {
			res.Frozen = true
			return nil
		}
		exists, err := c.PrepareContext(ctx, eventExistsSQL)
		if err != nil {
			return err
		}
		defer exists.Close()
		ok := make([]bool, len(p.Requests))
		for i, r := range p.Requests {
			ok[i] = true
			for _, e := range r.Events {
				var one int
				err := exists.QueryRowContext(ctx, e.AggregateID, e.AggregateVersion).Scan(&one)
				if err == sql.ErrNoRows {
					continue
				}
				if err != nil {
					return err
				}
				ok[i] = false
				res.Conflicts = append(res.Conflicts, eventstore.AppendConflict{
					Request: i, AggregateID: e.AggregateID, AggregateVersion: e.AggregateVersion,
				})
				break
			}
		}
		insert, err := c.PrepareContext(ctx, insertEventSQL)
		if err != nil {
			return err
		}
		defer insert.Close()
		res.FirstPosition = last + 1
		pos := last
		for i, r := range p.Requests {
			if !ok[i] {
				continue
			}
			for _, e := range r.Events {
				pos++
				if _, err := insert.ExecContext(ctx, pos, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
					return err
				}
			}
		}
		if n := pos - last; n > 0 {
			if _, err := c.ExecContext(ctx, advanceStateSQL, n, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// SetFrozen implements eventstore.Dialect.
func (d *Dialect) SetFrozen(ctx context.Context, p *eventstore.SetFrozenParams) (*eventstore.SetFrozenResult, error) {
	res := &eventstore.SetFrozenResult{}
	err := d.write(ctx, func(c *sql.Conn) error {
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
func insertEvent(ctx context.Context, c *sql.Conn, pos int64, e *eventstore.Event) error {
	if _, err := c.ExecContext(ctx, insertEventSQL, pos, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)); err != nil {
		return err
	}
	_, err := c.ExecContext(ctx, advanceStateSQL, 1, 1)
	return err
}

// SetSecret implements eventstore.Dialect.
func (d *Dialect) SetSecret(ctx context.Context, p *eventstore.SetSecretParams) (*eventstore.SetSecretResult, error) {
	res := &eventstore.SetSecretResult{}
	err := d.write(ctx, func(c *sql.Conn) error {
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
	err := d.write(ctx, func(c *sql.Conn) error {
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

// checkpoint copies the WAL into the database file and truncates it.
func (d *Dialect) checkpoint(ctx context.Context) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, _ = d.db.ExecContext(ctx, checkpointSQL)
}

// PutSnapshot implements eventstore.Dialect.
func (d *Dialect) PutSnapshot(ctx context.Context, p *eventstore.PutSnapshotParams) error {
	return d.write(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, putSnapshotSQL, p.Key, p.Content)
		return err
	})
}

// DeleteSnapshot implements eventstore.Dialect.
func (d *Dialect) DeleteSnapshot(ctx context.Context, p *eventstore.DeleteSnapshotParams) error {
	return d.write(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, deleteSnapshotSQL, p.Key)
		return err
	})
}
