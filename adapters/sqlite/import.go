package sqlite

import (
	"context"
	"database/sql"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Checkpoint implements driver.Driver.
func (d *Dialect) Checkpoint(ctx context.Context, sourceID string) (*estype.ImportCheckpoint, error) {
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

// ListCheckpoints implements driver.Driver.
func (d *Dialect) ListCheckpoints(ctx context.Context) ([]estype.ImportCheckpoint, error) {
	rows, err := d.rdb.QueryContext(ctx, listCheckpointsSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	return scanCheckpoints(rows)
}

func scanCheckpoints(rows *sql.Rows) ([]estype.ImportCheckpoint, error) {
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.CheckpointFields)
	return out, interpretError(err)
}
