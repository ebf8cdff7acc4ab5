package sqlite

import (
	"context"
	"database/sql"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Checkpoint implements driver.Driver.
func (d *Dialect) Checkpoint(ctx context.Context, sourceID string) (*estype.ImportCheckpoint, error) {
	cp, err := driver.ScanLookup(d.rdb.QueryRowContext(ctx, getCheckpointSQL, sourceID), sql.ErrNoRows, driver.CheckpointFields)
	return cp, interpretError(err)
}

// ListCheckpoints implements driver.Driver.
func (d *Dialect) ListCheckpoints(ctx context.Context) ([]estype.ImportCheckpoint, error) {
	rows, err := d.rdb.QueryContext(ctx, listCheckpointsSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.CheckpointFields)
	return out, interpretError(err)
}
