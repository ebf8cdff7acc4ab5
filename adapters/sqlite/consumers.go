package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"

	"github.com/esctl/esctl/internal/driver"
)

var _ driver.Consumers = (*Dialect)(nil)

// CreateConsumer implements driver.Consumers (writes are serialized: the
// existence check and the insert see the same state).
func (d *Dialect) CreateConsumer(ctx context.Context, p *driver.CreateConsumerParams) (bool, error) {
	created := false
	err := d.write(ctx, func(c *wconn) error {
		var n int
		if err := c.QueryRowContext(ctx, consumerExistsSQL, p.Name).Scan(&n); err != nil || n > 0 {
			return err
		}
		created = true
		_, err := c.ExecContext(ctx, insertConsumerRowsSQL, p.Name, p.Members, p.Position, p.Now)
		return err
	})
	return created && err == nil, err
}

// ResizeConsumer implements driver.Consumers.
func (d *Dialect) ResizeConsumer(ctx context.Context, p *driver.CreateConsumerParams) error {
	return d.write(ctx, func(c *wconn) error {
		if _, err := c.ExecContext(ctx, deleteConsumerRowsSQL, p.Name); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, insertConsumerRowsSQL, p.Name, p.Members, p.Position, p.Now)
		return err
	})
}

// DeleteConsumer implements driver.Consumers.
func (d *Dialect) DeleteConsumer(ctx context.Context, name string) (int, error) {
	n := 0
	err := d.write(ctx, func(c *wconn) error {
		res, err := c.ExecContext(ctx, deleteConsumerRowsSQL, name)
		if err != nil {
			return err
		}
		n = affected(res)
		if _, err = c.ExecContext(ctx, deleteParkedSQL, name); err != nil {
			return err
		}
		_, err = c.ExecContext(ctx, deleteInstancesSQL, name)
		return err
	})
	return n, err
}

// Heartbeat implements driver.Consumers on the caller's clock (p.Now), in
// one write transaction.
func (d *Dialect) Heartbeat(ctx context.Context, p *driver.InstanceParams) (*driver.InstanceList, error) {
	l := &driver.InstanceList{Now: p.Now}
	err := d.write(ctx, func(c *wconn) error {
		l.Instances = l.Instances[:0]
		if _, err := c.ExecContext(ctx, heartbeatSQL, p.Name, p.Holder, p.TTL, p.Now); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, forgetInstancesSQL, p.Name, p.Now); err != nil {
			return err
		}
		rows, err := c.c.QueryContext(ctx, listInstancesSQL, p.Name, p.Now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var inst string
			if err := rows.Scan(&inst); err != nil {
				return err
			}
			l.Instances = append(l.Instances, inst)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// LeaveGroup implements driver.Consumers.
func (d *Dialect) LeaveGroup(ctx context.Context, p *driver.InstanceParams) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, leaveGroupSQL, p.Name, p.Holder)
		return err
	})
}

func affected(res sql.Result) int {
	n, err := res.RowsAffected()
	if err != nil {
		return 0
	}
	return int(n)
}

// ListConsumers implements driver.Consumers; Now is the caller's: SQLite
// runs on one machine.
func (d *Dialect) ListConsumers(ctx context.Context, name string) (*driver.ConsumerList, error) {
	rows, err := d.rdb.QueryContext(ctx, listConsumersSQL, name)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	l := &driver.ConsumerList{}
	l.Rows, err = driver.ScanAll(rows, driver.ConsumerFields)
	if err != nil {
		return nil, interpretError(err)
	}
	return l, nil
}

// TakeLease implements driver.Consumers on the caller's clock (p.Now).
func (d *Dialect) TakeLease(ctx context.Context, p *driver.LeaseParams) (*driver.ConsumerRow, bool, error) {
	var row *driver.ConsumerRow
	taken := false
	err := d.write(ctx, func(c *wconn) error {
		q := takeLeaseSQL
		if p.Renew {
			q = renewLeaseSQL
		}
		r, err := driver.ScanRow(c.QueryRowContext(ctx, q, p.Name, p.Member, p.Holder, p.TTL, p.Now), driver.ConsumerFields)
		if err == nil {
			row, taken = r, true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		row, err = driver.ScanRow(c.QueryRowContext(ctx, consumerRowSQL, p.Name, p.Member), driver.ConsumerFields)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return row, taken, nil
}

// ReleaseLease implements driver.Consumers.
func (d *Dialect) ReleaseLease(ctx context.Context, p *driver.LeaseParams) error {
	return d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, releaseLeaseSQL, p.Name, p.Member, p.Holder)
		return err
	})
}

// execer is the writer connection or a handler's transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func saveCheckpoint(ctx context.Context, c execer, p *driver.CheckpointParams) (bool, error) {
	res, err := c.ExecContext(ctx, saveCheckpointSQL, p.Name, p.Member, p.Holder, p.Position, p.Now)
	if err != nil {
		return false, err
	}
	return affected(res) == 1, nil
}

func parkEvent(ctx context.Context, c execer, p *driver.ParkedEvent) error {
	_, err := c.ExecContext(ctx, parkEventSQL, p.Name, p.Position, p.AggregateID, p.Error, p.Attempts, p.ParkedAt)
	return err
}

// SaveCheckpoint implements driver.Consumers.
func (d *Dialect) SaveCheckpoint(ctx context.Context, p *driver.CheckpointParams) (bool, error) {
	saved := false
	err := d.write(ctx, func(c *wconn) (err error) {
		saved, err = saveCheckpoint(ctx, c, p)
		return err
	})
	return saved && err == nil, err
}

// ResetConsumer implements driver.Consumers.
func (d *Dialect) ResetConsumer(ctx context.Context, p *driver.ResetConsumerParams) (int, error) {
	n := 0
	err := d.write(ctx, func(c *wconn) error {
		res, err := c.ExecContext(ctx, resetConsumerSQL, p.Name, p.Position, p.Now)
		if err == nil {
			n = affected(res)
		}
		return err
	})
	return n, err
}

// ParkEvent implements driver.Consumers.
func (d *Dialect) ParkEvent(ctx context.Context, p *driver.ParkedEvent) error {
	return d.write(ctx, func(c *wconn) error { return parkEvent(ctx, c, p) })
}

// ListParked implements driver.Consumers.
func (d *Dialect) ListParked(ctx context.Context, p *driver.ListParkedParams) ([]driver.ParkedEvent, error) {
	limit := int64(p.Limit)
	if limit <= 0 {
		limit = math.MaxInt64
	}
	rows, err := d.rdb.QueryContext(ctx, listParkedSQL, p.Name, p.After, p.ReplayOnly, limit)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.ParkedFields)
	return out, interpretError(err)
}

// CountParked implements driver.Consumers.
func (d *Dialect) CountParked(ctx context.Context) (map[string]int64, error) {
	rows, err := d.rdb.QueryContext(ctx, countParkedSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanCounts(rows)
	return out, interpretError(err)
}

// RequestReplay implements driver.Consumers.
func (d *Dialect) RequestReplay(ctx context.Context, p *driver.RequestReplayParams) (int, error) {
	n := 0
	err := d.write(ctx, func(c *wconn) error {
		if p.Positions == nil {
			res, err := c.ExecContext(ctx, requestReplayAllSQL, p.Name)
			if err == nil {
				n = affected(res)
			}
			return err
		}
		for _, pos := range p.Positions {
			res, err := c.ExecContext(ctx, requestReplayOneSQL, p.Name, pos)
			if err != nil {
				return err
			}
			n += affected(res)
		}
		return nil
	})
	return n, err
}

// UnparkEvent implements driver.Consumers.
func (d *Dialect) UnparkEvent(ctx context.Context, name string, position int64) (bool, error) {
	found := false
	err := d.write(ctx, func(c *wconn) error {
		res, err := c.ExecContext(ctx, unparkEventSQL, name, position)
		if err == nil {
			found = affected(res) > 0
		}
		return err
	})
	return found, err
}

// BeginConsumerTx implements driver.Consumers: a transaction on the writer
// connection, begun IMMEDIATE (the writer's DSN sets _txlock=immediate),
// which holds the store's writer until it ends. The handler must not write
// through the Store meanwhile: that write would wait for this transaction.
func (d *Dialect) BeginConsumerTx(ctx context.Context) (driver.ConsumerTx, error) {
	d.wmu.Lock()
	w, release, err := d.writer(ctx)
	if err != nil {
		d.wmu.Unlock()
		return nil, err
	}
	if err := d.enqueue(ctx); err != nil {
		release()
		d.wmu.Unlock()
		return nil, err
	}
	// Not bound to ctx: database/sql would roll the transaction back when
	// ctx ends, and a consumer that stops commits what it handled.
	tx, err := w.c.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		d.queue.release()
		release()
		d.wmu.Unlock()
		return nil, d.lockedBy(interpretError(err))
	}
	return &consumerTx{d: d, w: w, tx: tx, release: release}, nil
}

// consumerTx implements driver.ConsumerTx; it holds the writer (wmu)
// until it ends.
type consumerTx struct {
	d       *Dialect
	w       *wconn
	tx      *sql.Tx
	release func()
	done    bool
}

func (t *consumerTx) Raw() any { return t.tx }

func (t *consumerTx) SaveCheckpoint(ctx context.Context, p *driver.CheckpointParams) (bool, error) {
	saved, err := saveCheckpoint(ctx, t.tx, p)
	return saved, interpretError(err)
}

func (t *consumerTx) ParkEvent(ctx context.Context, p *driver.ParkedEvent) error {
	return interpretError(parkEvent(ctx, t.tx, p))
}

func (t *consumerTx) end(err error) error {
	if !t.done {
		t.done = true
		t.d.queue.release()
		t.release()
		t.d.wmu.Unlock()
	}
	return interpretError(err)
}

func (t *consumerTx) Commit(ctx context.Context) error {
	if t.done {
		return sql.ErrTxDone
	}
	err := t.tx.Commit()
	if err != nil {
		// A failed COMMIT (SQLITE_BUSY) can leave the transaction open
		// on the connection: end it, or discard the connection.
		t.d.rollback(context.WithoutCancel(ctx), t.w)
	}
	return t.end(err)
}

func (t *consumerTx) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	err := t.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		err = nil // database/sql rolled back already (ctx ended)
	} else if err != nil {
		t.d.rollback(context.WithoutCancel(ctx), t.w)
	}
	return t.end(err)
}

func (t *consumerTx) UnparkEvent(ctx context.Context, name string, position int64) (bool, error) {
	res, err := t.tx.ExecContext(ctx, unparkEventSQL, name, position)
	if err != nil {
		return false, interpretError(err)
	}
	return affected(res) > 0, nil
}
