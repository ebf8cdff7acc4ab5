package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// BeginIncremental implements driver.Driver.
func (d *Dialect) BeginIncremental(ctx context.Context, p *driver.BeginIncrementalParams) error {
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

// stageEvents inserts p's events into the staging table of its import.
func stageEvents(ctx context.Context, c *wconn, es *eventSQL, p *driver.PushIncrementalParams) error {
	args := make([]any, 5, 6)
	for i := range p.Events {
		if !es.meta && p.Events[i].Metadata != nil {
			return driver.ErrNoMetadata()
		}
		e := &p.Events[i]
		args = append(args[:0], p.ID, e.AggregateID, e.Type, e.Timestamp, string(e.Payload))
		if es.meta {
			args = append(args, metadataArg(e.Metadata))
		}
		if _, err := c.ExecContext(ctx, es.pushIncremental, args...); err != nil {
			return err
		}
	}
	return nil
}

// PushIncremental implements driver.Driver. SQLite serializes writers,
// so no commit can run during a push.
func (d *Dialect) PushIncremental(ctx context.Context, p *driver.PushIncrementalParams) (bool, error) {
	found := false
	err := d.write(ctx, func(c *wconn) error {
		var err error
		if found, err = incrementalExists(ctx, c, p.ID); err != nil || !found || len(p.Events) == 0 {
			return err
		}
		if err := stageEvents(ctx, c, d.sql(), p); err != nil {
			return err
		}
		_, err = c.ExecContext(ctx, touchIncrementalSQL, p.Now, p.ID)
		return err
	})
	return found, err
}

// RollbackIncremental implements driver.Driver.
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

// ListIncremental implements driver.Driver.
func (d *Dialect) ListIncremental(ctx context.Context) ([]estype.IncrementalImportInfo, error) {
	rows, err := d.rdb.QueryContext(ctx, listIncrementalSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.IncrementalFields)
	return out, interpretError(err)
}
