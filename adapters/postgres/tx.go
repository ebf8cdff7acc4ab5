package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Write implements driver.Driver: one transaction whose first round trip
// sets its timeouts and locks the store-state row (SELECT ... FOR UPDATE).
// A Bulk transaction may use any plan; the others are limited to index
// access (see indexOnlySQL).
func (d *Dialect) Write(ctx context.Context, p *driver.WriteParams, fn func(driver.Tx) error) error {
	t := &writeTx{d: d}
	return d.writeTx(ctx, !p.Bulk, &t.wroteEvents, func(tx pgx.Tx, st driver.State) error {
		t.tx, t.state = tx, st
		// The store's own writes into a frozen store (imports, restores)
		// pass the database's freeze trigger (migration 6); no other
		// transaction sees the bypass, which is closed before commit.
		if st.Frozen {
			if err := t.exec(ctx, setMaintenanceSQL, true); err != nil {
				return err
			}
		}
		if err := fn(t); err != nil {
			return err
		}
		if st.Frozen {
			return t.exec(ctx, setMaintenanceSQL, false)
		}
		return nil
	})
}

// writeTx implements driver.Tx on a pgx transaction.
type writeTx struct {
	d           *Dialect
	tx          pgx.Tx
	state       driver.State
	wroteEvents bool // notify the store's channel at commit
}

var _ driver.Tx = (*writeTx)(nil)

func (t *writeTx) State() driver.State { return t.state }

func (t *writeTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, t.d.q(query), args...)
	return interpretError(err)
}

// copyMinEvents is the batch size from which InsertEvents uses COPY; below
// it one INSERT statement is a single round trip.
const copyMinEvents = 64

func tableOf(t driver.Table) string {
	if t == driver.Staging {
		return stagingTable
	}
	return eventsTable
}

// InsertEvents implements driver.Tx. A few events go in with one statement
// that checks their keys first; a batch goes in with COPY inside a
// savepoint, and if COPY hits the unique key the savepoint is rolled back
// and the first conflicting event is looked up.
func (t *writeTx) InsertEvents(ctx context.Context, p *driver.InsertEventsParams) (int, error) {
	n := len(p.Events)
	if n == 0 {
		return -1, nil
	}
	table := tableOf(p.Table)
	es := t.d.sql()
	if !es.meta && driver.AnyMetadata(p.Events) {
		return 0, driver.ErrNoMetadata()
	}
	if n < copyMinEvents {
		positions, versions, timestamps := make([]int64, n), make([]int64, n), make([]int64, n)
		ids, types, payloads, metadatas := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, e := range p.Events {
			positions[i], ids[i], versions[i], types[i], timestamps[i], payloads[i] = e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload)
			metadatas[i] = string(e.Metadata)
		}
		args := []any{positions, ids, versions, types, timestamps, payloads}
		if es.meta {
			args = append(args, metadatas)
		}
		var conflict *int64
		var inserted int64
		err := t.tx.QueryRow(ctx, t.d.q(fmt.Sprintf(es.insertEvents, table, table)), args...).Scan(&conflict, &inserted)
		switch {
		case err != nil:
			return 0, interpretError(err)
		case conflict != nil:
			return int(*conflict), nil
		}
		t.wroteEvents = true
		return -1, nil
	}
	if err := t.exec(ctx, savepointSQL); err != nil {
		return 0, err
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{t.d.schema, table}, es.copyColumns, &copyEvents{events: p.Events, columns: len(es.copyColumns)})
	if err == nil {
		t.wroteEvents = true
		return -1, t.exec(ctx, releaseSavepointSQL)
	}
	if !isUniqueViolation(err) {
		return 0, interpretError(err)
	}
	if err := t.exec(ctx, rollbackToSavepointSQL); err != nil {
		return 0, err
	}
	ids := make([]string, n)
	versions := make([]int64, n)
	for i, e := range p.Events {
		ids[i], versions[i] = e.AggregateID, e.AggregateVersion
	}
	var idx *int64
	if err := t.tx.QueryRow(ctx, t.d.q(fmt.Sprintf(insertConflictSQL, table)), ids, versions).Scan(&idx); err != nil {
		return 0, interpretError(err)
	}
	if idx == nil {
		return 0, fmt.Errorf("postgres: a batch hit a unique key but no repeated (aggregate id, version) was found: %w", interpretError(err))
	}
	return int(*idx), t.exec(ctx, releaseSavepointSQL)
}

// LastVersions implements driver.Tx in one statement: a backward probe of
// the aggregate-version unique index per aggregate.
func (t *writeTx) LastVersions(ctx context.Context, aggregateIDs []string) ([]int64, error) {
	rows, err := t.tx.Query(ctx, t.d.q(lastVersionsSQL), aggregateIDs)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, interpretError(err)
	}
	return out, nil
}

func (t *writeTx) AdvanceState(ctx context.Context, p *driver.AdvanceStateParams) error {
	return t.exec(ctx, advanceStateSQL, p.LastPosition, p.Events)
}

func (t *writeTx) SetFrozen(ctx context.Context, p *driver.SetFrozenParams) error {
	return t.exec(ctx, setFrozenSQL, p.Frozen, p.Reason)
}

func (t *writeTx) MaxSecretIdx(ctx context.Context) (int64, error) {
	var idx int64
	err := t.tx.QueryRow(ctx, t.d.q(maxSecretIdxSQL)).Scan(&idx)
	return idx, interpretError(err)
}

// InsertSecrets implements driver.Tx in one statement that checks the ids
// and idxs first.
func (t *writeTx) InsertSecrets(ctx context.Context, secrets []estype.Secret) (int, error) {
	n := len(secrets)
	if n == 0 {
		return -1, nil
	}
	idxs, ids, values := make([]int64, n), make([]string, n), make([]*string, n)
	for i, s := range secrets {
		idxs[i], ids[i], values[i] = s.Idx, s.ID, s.Secret
	}
	var conflict *int64
	var inserted int64
	if err := t.tx.QueryRow(ctx, t.d.q(insertSecretsSQL), idxs, ids, values).Scan(&conflict, &inserted); err != nil {
		return 0, interpretError(err)
	}
	if conflict != nil {
		return int(*conflict), nil
	}
	return -1, nil
}

func (t *writeTx) TombstoneSecret(ctx context.Context, id string) (bool, error) {
	tag, err := t.tx.Exec(ctx, t.d.q(tombstoneSecretSQL), id)
	if err != nil {
		return false, interpretError(err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *writeTx) AddSecretCounts(ctx context.Context, p *driver.AddSecretCountsParams) error {
	return t.exec(ctx, addSecretCountsSQL, p.Secrets, p.Deleted)
}

func (t *writeTx) UpsertCheckpoint(ctx context.Context, cp *estype.ImportCheckpoint) error {
	hs := cp.HashState
	if hs == nil {
		hs = []byte{}
	}
	return t.exec(ctx, upsertCheckpointSQL, cp.SourceID, cp.Kind, cp.Mode, cp.Froze, cp.BasePosition,
		cp.ByteOffset, cp.Line, cp.Events, cp.LastPosition, hs, cp.Done, cp.UpdatedAt)
}

func (t *writeTx) DeleteCheckpoint(ctx context.Context, sourceID string) error {
	return t.exec(ctx, deleteCheckpointSQL, sourceID)
}

func (t *writeTx) DeleteSnapshots(ctx context.Context) error { return t.exec(ctx, deleteSnapshotsSQL) }

func (t *writeTx) ClearStaging(ctx context.Context) error { return t.exec(ctx, clearStagingSQL) }

func (t *writeTx) DeleteEvents(ctx context.Context) error {
	return t.batch(ctx, deleteEventsSQL, resetEventStateSQL)
}

// SwapStaging implements driver.Tx. DELETE (not TRUNCATE, which is not
// MVCC-safe) keeps concurrent readers' snapshots intact.
func (t *writeTx) SwapStaging(ctx context.Context) error {
	t.wroteEvents = true
	return t.batch(ctx, deleteEventsSQL, t.d.sql().swapMove, clearStagingSQL, swapStateSQL)
}

// batch runs argument-less statements in one round trip.
func (t *writeTx) batch(ctx context.Context, queries ...string) error {
	b := &pgx.Batch{}
	for _, q := range queries {
		b.Queue(t.d.q(q))
	}
	return interpretError(t.tx.SendBatch(ctx, b).Close())
}

func (t *writeTx) StageIncremental(ctx context.Context, p *driver.PushIncrementalParams) error {
	if err := t.exec(ctx, beginIncrementalSQL, p.ID, p.Now); err != nil {
		return err
	}
	es := t.d.sql()
	if !es.meta && driver.AnyEventMetadata(p.Events) {
		return driver.ErrNoMetadata()
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{t.d.schema, stagedTable}, es.stagedColumns, stagedRows(es, p))
	return interpretError(err)
}

func (t *writeTx) LockIncremental(ctx context.Context, id string) (bool, error) {
	var one int
	err := t.tx.QueryRow(ctx, t.d.q(lockIncrementalSQL), id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, interpretError(err)
}

// ClassifyIncremental implements driver.Tx in a temporary table dropped at
// the end of the transaction.
func (t *writeTx) ClassifyIncremental(ctx context.Context, id string) (*driver.IncrementalWork, error) {
	// The temporary table must exist before the batch is prepared.
	if _, err := t.tx.Exec(ctx, createWorkSQL); err != nil {
		return nil, interpretError(err)
	}
	w := &driver.IncrementalWork{}
	var oldestID *string
	var oldestTS *int64
	b := &pgx.Batch{}
	b.Queue(t.d.q(t.d.sql().classifyStaged), id, driver.IncrementalDuplicateStaged, driver.IncrementalDuplicateStored, driver.IncrementalFresh)
	b.Queue(t.d.q(markOlderSQL), driver.IncrementalOlder, driver.IncrementalFresh)
	b.Queue(t.d.q(workCountsSQL), driver.IncrementalFresh, driver.IncrementalDuplicateStaged, driver.IncrementalDuplicateStored, driver.IncrementalOlder).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&w.Fresh, &w.Duplicates, &w.Older, &w.NewestTimestamp, &oldestID, &oldestTS)
		})
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, interpretError(err)
	}
	if oldestID != nil && oldestTS != nil {
		w.OldestAggregateID, w.OldestTimestamp = *oldestID, *oldestTS
	}
	return w, nil
}

func (t *writeTx) AppendIncremental(ctx context.Context, p *driver.AppendIncrementalParams) error {
	t.wroteEvents = true
	return t.exec(ctx, t.d.sql().appendWork, p.After, driver.IncrementalFresh)
}

func (t *writeTx) DeleteIncremental(ctx context.Context, id string) error {
	b := &pgx.Batch{}
	b.Queue(t.d.q(deleteStagedSQL), id)
	b.Queue(t.d.q(deleteIncrementalSQL), id)
	return interpretError(t.tx.SendBatch(ctx, b).Close())
}
