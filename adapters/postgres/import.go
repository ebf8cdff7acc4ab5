package postgres

import (
	"context"
	"fmt"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
	"github.com/jackc/pgx/v5"
)

// copyEvents is the pgx.CopyFromSource of an import batch. Its row is one
// slice of pointers into the current event, reused for every row, so that
// COPY encodes the batch without allocating per row.
type copyEvents struct {
	events  []estype.StoredEvent
	next    int
	columns int    // len(copyColumns): 7 with metadata
	payload []byte // the current payload as []byte: pgx sends it as the json text
	meta    []byte // the current metadata (nil: NULL)
	row     []any
}

var _ pgx.CopyFromSource = (*copyEvents)(nil)

func (c *copyEvents) Next() bool {
	c.next++
	return c.next <= len(c.events)
}

func (c *copyEvents) Values() ([]any, error) {
	e := &c.events[c.next-1]
	c.payload, c.meta = e.Payload, e.Metadata
	if c.row == nil {
		c.row = make([]any, c.columns)
	}
	c.row[0], c.row[1], c.row[2], c.row[3], c.row[4], c.row[5] = &e.Position, &e.AggregateID, &e.AggregateVersion, &e.Type, &e.Timestamp, &c.payload
	if c.columns > 6 {
		c.row[6] = &c.meta
	}
	return c.row, nil
}

func (c *copyEvents) Err() error { return nil }

// FirstStoredPair implements driver.Driver.
func (d *Dialect) FirstStoredPair(ctx context.Context, events []estype.StoredEvent) (int, error) {
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

// Checkpoint implements driver.Driver.
func (d *Dialect) Checkpoint(ctx context.Context, sourceID string) (*estype.ImportCheckpoint, error) {
	cp, err := driver.ScanLookup(d.pool.QueryRow(ctx, d.q(getCheckpointSQL), sourceID), pgx.ErrNoRows, driver.CheckpointFields)
	return cp, interpretError(err)
}

// ListCheckpoints implements driver.Driver.
func (d *Dialect) ListCheckpoints(ctx context.Context) ([]estype.ImportCheckpoint, error) {
	rows, err := d.pool.Query(ctx, d.q(listCheckpointsSQL))
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.CheckpointFields)
	return out, interpretError(err)
}
