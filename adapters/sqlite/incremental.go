package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/esctl/esctl/eventstore"
)

// BeginIncremental implements eventstore.Dialect.
func (d *Dialect) BeginIncremental(ctx context.Context, p *eventstore.BeginIncrementalParams) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, beginIncrementalSQL, p.ID, p.Now, p.Now)
		return err
	})
}

func incrementalExists(ctx context.Context, c *wconn, id string) (bool, error) {
	var one int
	err := c.QueryRowContext(ctx, incrementalExistsSQL, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// PushIncremental implements eventstore.Dialect. SQLite serializes writers,
// so no commit can run during a push.
func (d *Dialect) PushIncremental(ctx context.Context, p *eventstore.PushIncrementalParams) (bool, error) {
	found := false
	err := d.write(ctx, func(c *wconn) error {
		var err error
		if found, err = incrementalExists(ctx, c, p.ID); err != nil || !found || len(p.Events) == 0 {
			return err
		}
		for i := range p.Events {
			e := &p.Events[i]
			if _, err := c.ExecContext(ctx, pushIncrementalSQL, p.ID, e.AggregateID, e.Type, e.Timestamp, string(e.Payload)); err != nil {
				return err
			}
		}
		_, err = c.ExecContext(ctx, touchIncrementalSQL, p.Now, p.ID)
		return err
	})
	return found, err
}

// errRefused rolls back a commit that refused older events.
var errRefused = errors.New("refused")

// CommitIncremental implements eventstore.Dialect (see
// eventstore.CommitIncrementalParams).
func (d *Dialect) CommitIncremental(ctx context.Context, p *eventstore.CommitIncrementalParams) (*eventstore.CommitIncrementalResult, error) {
	res := &eventstore.CommitIncrementalResult{}
	err := d.write(ctx, func(c *wconn) error {
		frozen, last, err := lockedState(ctx, c)
		if err != nil {
			return err
		}
		found, err := incrementalExists(ctx, c, p.ID)
		switch {
		case err != nil:
			return err
		case !found:
			res.NotFound = true
			return nil
		case frozen:
			res.Frozen = true
			return nil
		}
		for _, q := range []string{createWorkSQL, clearWorkSQL} {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if _, err := c.ExecContext(ctx, classifyStagedSQL, p.ID); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, newestTimestampSQL).Scan(&res.NewestTimestamp); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, markOlderSQL, res.NewestTimestamp); err != nil {
			return err
		}
		var older int64
		if err := c.QueryRowContext(ctx, workCountsSQL).Scan(&res.Appended, &res.Duplicates, &older); err != nil {
			return err
		}
		if older > 0 && !p.SkipOlder {
			res.OlderRefused, res.Appended, res.Duplicates = older, 0, 0
			if err := c.QueryRowContext(ctx, oldestWorkSQL).Scan(&res.OldestAggregateID, &res.OldestTimestamp); err != nil {
				return err
			}
			return errRefused
		}
		res.Skipped = older
		if res.Appended > 0 {
			res.FirstPosition = last + 1
			if _, err := c.ExecContext(ctx, workBaseVersionSQL); err != nil {
				return err
			}
			if _, err := c.ExecContext(ctx, appendWorkSQL, last); err != nil {
				return err
			}
			if _, err := c.ExecContext(ctx, advanceStateSQL, res.Appended, res.Appended); err != nil {
				return err
			}
		}
		for _, q := range []string{clearWorkSQL, deleteStagedSQL, deleteIncrementalSQL} {
			args := []any{p.ID}
			if q == clearWorkSQL {
				args = nil
			}
			if _, err := c.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRefused) {
		return nil, err
	}
	return res, nil
}

// RollbackIncremental implements eventstore.Dialect.
func (d *Dialect) RollbackIncremental(ctx context.Context, id string) (bool, error) {
	found := false
	err := d.write(ctx, func(c *wconn) error {
		if _, err := c.ExecContext(ctx, deleteStagedSQL, id); err != nil {
			return err
		}
		r, err := c.ExecContext(ctx, deleteIncrementalSQL, id)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		found = n > 0
		return err
	})
	return found, err
}

// ListIncremental implements eventstore.Dialect.
func (d *Dialect) ListIncremental(ctx context.Context) ([]eventstore.IncrementalImport, error) {
	rows, err := d.rdb.QueryContext(ctx, listIncrementalSQL)
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
