package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

var _ driver.Consumers = (*Dialect)(nil)

// CreateConsumer implements driver.Consumers.
func (d *Dialect) CreateConsumer(ctx context.Context, p *driver.CreateConsumerParams) (bool, error) {
	created := false
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockConsumerSQL, d.schema+"."+p.Name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, d.q(createConsumerSQL), p.Name, p.Members, p.Position, p.Now)
		created = tag.RowsAffected() > 0
		return err
	})
	return created, interpretError(err)
}

// ResizeConsumer implements driver.Consumers.
func (d *Dialect) ResizeConsumer(ctx context.Context, p *driver.CreateConsumerParams) error {
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockConsumerSQL, d.schema+"."+p.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, d.q(deleteConsumerRowsSQL), p.Name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, d.q(insertConsumerRowsSQL), p.Name, p.Members, p.Position, p.Now)
		return err
	})
	return interpretError(err)
}

// DeleteConsumer implements driver.Consumers.
func (d *Dialect) DeleteConsumer(ctx context.Context, name string) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, d.q(deleteConsumerRowsSQL), name)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if _, err = tx.Exec(ctx, d.q(deleteParkedSQL), name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, d.q(deleteInstancesSQL), name)
		return err
	})
	return n, interpretError(err)
}

// Heartbeat implements driver.Consumers on the server's clock, in one
// statement.
func (d *Dialect) Heartbeat(ctx context.Context, p *driver.InstanceParams) (*driver.InstanceList, error) {
	rows, err := d.pool.Query(ctx, d.q(heartbeatSQL), p.Name, p.Holder, p.TTL)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	l := &driver.InstanceList{}
	for rows.Next() {
		var inst string
		if err := rows.Scan(&inst, &l.Now); err != nil {
			return nil, interpretError(err)
		}
		l.Instances = append(l.Instances, inst)
	}
	return l, interpretError(rows.Err())
}

// LeaveGroup implements driver.Consumers.
func (d *Dialect) LeaveGroup(ctx context.Context, p *driver.InstanceParams) error {
	_, err := d.pool.Exec(ctx, d.q(leaveGroupSQL), p.Name, p.Holder)
	return interpretError(err)
}

// ListConsumers implements driver.Consumers.
func (d *Dialect) ListConsumers(ctx context.Context, name string) (*driver.ConsumerList, error) {
	rows, err := d.pool.Query(ctx, d.q(listConsumersSQL), name)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	l := &driver.ConsumerList{}
	l.Rows, err = driver.ScanAll(rows, func(r *driver.ConsumerRow) []any { return append(driver.ConsumerFields(r), &l.Now) })
	if err != nil {
		return nil, interpretError(err)
	}
	if len(l.Rows) == 0 {
		if err := d.pool.QueryRow(ctx, nowSQL).Scan(&l.Now); err != nil {
			return nil, interpretError(err)
		}
	}
	return l, nil
}

// TakeLease implements driver.Consumers on the server's clock.
func (d *Dialect) TakeLease(ctx context.Context, p *driver.LeaseParams) (*driver.ConsumerRow, bool, error) {
	q := takeLeaseSQL
	if p.Renew {
		q = renewLeaseSQL
	}
	r, err := driver.ScanRow(d.pool.QueryRow(ctx, d.q(q), p.Name, p.Member, p.Holder, p.TTL), driver.ConsumerFields)
	if err == nil {
		return r, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, interpretError(err)
	}
	r, err = driver.ScanRow(d.pool.QueryRow(ctx, d.q(consumerRowSQL), p.Name, p.Member), driver.ConsumerFields)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	return r, false, interpretError(err)
}

// ReleaseLease implements driver.Consumers.
func (d *Dialect) ReleaseLease(ctx context.Context, p *driver.LeaseParams) error {
	_, err := d.pool.Exec(ctx, d.q(releaseLeaseSQL), p.Name, p.Member, p.Holder)
	return interpretError(err)
}

// SaveCheckpoint implements driver.Consumers.
func (d *Dialect) SaveCheckpoint(ctx context.Context, p *driver.CheckpointParams) (bool, error) {
	return saveCheckpoint(ctx, d, d.pool.Exec, p)
}

// execFunc is the pool's or a transaction's Exec.
type execFunc func(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)

func saveCheckpoint(ctx context.Context, d *Dialect, exec execFunc, p *driver.CheckpointParams) (bool, error) {
	tag, err := exec(ctx, d.q(saveCheckpointSQL), p.Name, p.Member, p.Holder, p.Position, p.Now)
	if err != nil {
		return false, interpretError(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ResetConsumer implements driver.Consumers.
func (d *Dialect) ResetConsumer(ctx context.Context, p *driver.ResetConsumerParams) (int, error) {
	tag, err := d.pool.Exec(ctx, d.q(resetConsumerSQL), p.Name, p.Position, p.Now)
	if err != nil {
		return 0, interpretError(err)
	}
	return int(tag.RowsAffected()), nil
}

// ParkEvent implements driver.Consumers.
func (d *Dialect) ParkEvent(ctx context.Context, p *driver.ParkedEvent) error {
	return parkEvent(ctx, d, d.pool.Exec, p)
}

func parkEvent(ctx context.Context, d *Dialect, exec execFunc, p *driver.ParkedEvent) error {
	_, err := exec(ctx, d.q(parkEventSQL), p.Name, p.Position, p.AggregateID, p.Error, p.Attempts, p.ParkedAt)
	return interpretError(err)
}

// ListParked implements driver.Consumers.
func (d *Dialect) ListParked(ctx context.Context, p *driver.ListParkedParams) ([]driver.ParkedEvent, error) {
	limit := int64(p.Limit)
	if limit <= 0 {
		limit = math.MaxInt64
	}
	rows, err := d.pool.Query(ctx, d.q(listParkedSQL), p.Name, p.After, p.ReplayOnly, limit)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanAll(rows, driver.ParkedFields)
	return out, interpretError(err)
}

// CountParked implements driver.Consumers.
func (d *Dialect) CountParked(ctx context.Context) (map[string]int64, error) {
	rows, err := d.pool.Query(ctx, d.q(countParkedSQL))
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out, err := driver.ScanCounts(rows)
	return out, interpretError(err)
}

// RequestReplay implements driver.Consumers.
func (d *Dialect) RequestReplay(ctx context.Context, p *driver.RequestReplayParams) (int, error) {
	var tag pgconn.CommandTag
	var err error
	if p.Positions == nil {
		tag, err = d.pool.Exec(ctx, d.q(requestReplayAllSQL), p.Name)
	} else {
		tag, err = d.pool.Exec(ctx, d.q(requestReplaySomeSQL), p.Name, p.Positions)
	}
	if err != nil {
		return 0, interpretError(err)
	}
	return int(tag.RowsAffected()), nil
}

// UnparkEvent implements driver.Consumers.
func (d *Dialect) UnparkEvent(ctx context.Context, name string, position int64) (bool, error) {
	tag, err := d.pool.Exec(ctx, d.q(unparkEventSQL), name, position)
	if err != nil {
		return false, interpretError(err)
	}
	return tag.RowsAffected() > 0, nil
}

// BeginConsumerTx implements driver.Consumers: a transaction on the pool
// (the handler's tables and the checkpoint commit together; the store
// lock is not taken).
func (d *Dialect) BeginConsumerTx(ctx context.Context) (driver.ConsumerTx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, interpretError(err)
	}
	return &consumerTx{d: d, tx: tx}, nil
}

// consumerTx implements driver.ConsumerTx.
type consumerTx struct {
	d  *Dialect
	tx pgx.Tx
}

func (t *consumerTx) Raw() any { return t.tx }

func (t *consumerTx) SaveCheckpoint(ctx context.Context, p *driver.CheckpointParams) (bool, error) {
	return saveCheckpoint(ctx, t.d, t.tx.Exec, p)
}

func (t *consumerTx) ParkEvent(ctx context.Context, p *driver.ParkedEvent) error {
	return parkEvent(ctx, t.d, t.tx.Exec, p)
}

// Commit commits; an error that is not the server's refusal of the
// COMMIT (a broken connection, a FATAL error) leaves the outcome unknown.
func (t *consumerTx) Commit(ctx context.Context) error {
	err := t.tx.Commit(ctx)
	if err == nil || errors.Is(err, pgx.ErrTxClosed) || isStatementError(err) {
		return interpretError(err)
	}
	return fmt.Errorf("%w: %w", estype.ErrOutcomeUnknown, err)
}

func (t *consumerTx) Rollback(ctx context.Context) error {
	err := t.tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return interpretError(err)
}

func (t *consumerTx) UnparkEvent(ctx context.Context, name string, position int64) (bool, error) {
	tag, err := t.tx.Exec(ctx, t.d.q(unparkEventSQL), name, position)
	if err != nil {
		return false, interpretError(err)
	}
	return tag.RowsAffected() > 0, nil
}
