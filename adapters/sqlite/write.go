package sqlite

import (
	"context"

	"github.com/esctl/esctl/internal/driver"
)

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
	if err := d.enqueue(ctx); err != nil {
		return
	}
	defer d.queue.release()
	_, _ = w.c.ExecContext(ctx, checkpointSQL)
}

// PutSnapshot implements driver.Driver.
func (d *Dialect) PutSnapshot(ctx context.Context, p *driver.Snapshot) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, putSnapshotSQL, p.Key, p.Content)
		return err
	})
}

// DeleteSnapshot implements driver.Driver.
func (d *Dialect) DeleteSnapshot(ctx context.Context, key string) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, deleteSnapshotSQL, key)
		return err
	})
}
