package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// Write implements driver.Driver: a BEGIN IMMEDIATE transaction on the
// writer connection, which holds SQLite's write lock from its start. After
// a transaction that deleted a secret it checkpoints the WAL (TRUNCATE) so
// that, with secure_delete, the value leaves the database files (best
// effort: an open reader can delay it).
func (d *Dialect) Write(ctx context.Context, _ *driver.WriteParams, fn func(driver.Tx) error) error {
	tx := &writeTx{}
	err := d.writeRaw(ctx, func(c *wconn) error {
		*tx = writeTx{c: c, es: d.sql()}
		st := &tx.state
		if err := c.QueryRowContext(ctx, lockedStateSQL).Scan(&st.Frozen, &st.FrozenReason, &st.LastPosition); err != nil {
			return interpretError(err)
		}
		// The store's own writes into a frozen store (imports, restores)
		// pass the database's freeze trigger (migration 6); the bypass is
		// closed before commit, and SQLite has one writer at a time, so no
		// other connection sees it.
		if st.Frozen {
			if err := tx.exec(ctx, setMaintenanceSQL, 1); err != nil {
				return err
			}
		}
		if err := fn(tx); err != nil {
			return err
		}
		if st.Frozen {
			return tx.exec(ctx, setMaintenanceSQL, 0)
		}
		return nil
	})
	if err == nil && tx.tombstoned {
		d.checkpoint(ctx)
	}
	return err
}

// writeTx implements driver.Tx on the writer connection.
type writeTx struct {
	c          *wconn
	es         *eventSQL
	state      driver.State
	tombstoned bool // a secret was deleted: checkpoint the WAL after commit
}

var _ driver.Tx = (*writeTx)(nil)

func (t *writeTx) State() driver.State { return t.state }

// exec runs a statement and interprets its error.
func (t *writeTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.c.ExecContext(ctx, query, args...)
	return interpretError(err)
}

// InsertEvents implements driver.Tx. Rows are inserted one by one with a
// prepared statement; SQLite reports a unique violation on the row that
// causes it, which gives the conflicting index directly, and a savepoint
// (taken for more than one event) undoes the call's earlier rows.
//
// The rows are inserted under a context without a Done channel: with one,
// modernc.org/sqlite starts a goroutine per statement to watch it (a
// million of them for a million events). ctx is checked every
// cancelCheckRows rows instead: the caller then rolls the transaction back.
func (t *writeTx) InsertEvents(ctx context.Context, p *driver.InsertEventsParams) (int, error) {
	q := t.es.insertEvent
	if p.Table == driver.Staging {
		q = t.es.insertStaging
	}
	args := make([]any, 6, 7)
	if !t.es.meta && driver.AnyMetadata(p.Events) {
		return 0, driver.ErrNoMetadata()
	}
	multi := len(p.Events) > 1
	if multi {
		if err := t.exec(ctx, savepointSQL); err != nil {
			return 0, err
		}
	}
	rowCtx := context.WithoutCancel(ctx)
	for i := range p.Events {
		if i%cancelCheckRows == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		e := &p.Events[i]
		args = append(args[:0], e.Position, e.AggregateID, e.AggregateVersion, e.Type, e.Timestamp, string(e.Payload))
		if t.es.meta {
			args = append(args, metadataArg(e.Metadata))
		}
		_, err := t.c.ExecContext(rowCtx, q, args...)
		if err == nil {
			continue
		}
		if err := interpretError(err); !errors.Is(err, estype.ErrConflict) {
			return 0, err
		}
		if multi {
			if err := t.exec(ctx, rollbackToSavepointSQL); err != nil {
				return 0, err
			}
			if err := t.exec(ctx, releaseSavepointSQL); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	if multi {
		if err := t.exec(ctx, releaseSavepointSQL); err != nil {
			return 0, err
		}
	}
	return -1, nil
}

// LastVersions implements driver.Tx: one lookup per aggregate on the
// aggregate-version unique index.
func (t *writeTx) LastVersions(ctx context.Context, aggregateIDs []string) ([]int64, error) {
	out := make([]int64, len(aggregateIDs))
	for i, id := range aggregateIDs {
		err := t.c.QueryRowContext(ctx, lastVersionSQL, id).Scan(&out[i])
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, interpretError(err)
		}
	}
	return out, nil
}

// cancelCheckRows is how often InsertEvents checks its context.
const cancelCheckRows = 1024

func (t *writeTx) AdvanceState(ctx context.Context, p *driver.AdvanceStateParams) error {
	return t.exec(ctx, advanceStateSQL, p.LastPosition, p.Events)
}

func (t *writeTx) SetFrozen(ctx context.Context, p *driver.SetFrozenParams) error {
	return t.exec(ctx, setFrozenSQL, p.Frozen, p.Reason)
}

func (t *writeTx) MaxSecretIdx(ctx context.Context) (int64, error) {
	var idx int64
	err := t.c.QueryRowContext(ctx, maxSecretIdxSQL).Scan(&idx)
	return idx, interpretError(err)
}

// InsertSecrets implements driver.Tx: an idx in use is looked up, an id in
// use is the unique key's violation.
func (t *writeTx) InsertSecrets(ctx context.Context, secrets []estype.Secret) (int, error) {
	multi := len(secrets) > 1
	if multi {
		if err := t.exec(ctx, savepointSQL); err != nil {
			return 0, err
		}
	}
	conflict := -1
	for i, sec := range secrets {
		var one int
		switch err := t.c.QueryRowContext(ctx, secretIdxUsedSQL, sec.Idx).Scan(&one); {
		case err == nil:
			conflict = i
		case !errors.Is(err, sql.ErrNoRows):
			return 0, interpretError(err)
		}
		if conflict >= 0 {
			break
		}
		var v any
		if sec.Secret != nil {
			v = *sec.Secret
		}
		if err := t.exec(ctx, insertSecretSQL, sec.Idx, sec.ID, v); err != nil {
			if !errors.Is(err, estype.ErrSecretExists) {
				return 0, err
			}
			conflict = i
			break
		}
	}
	if multi {
		if conflict >= 0 {
			if err := t.exec(ctx, rollbackToSavepointSQL); err != nil {
				return 0, err
			}
		}
		if err := t.exec(ctx, releaseSavepointSQL); err != nil {
			return 0, err
		}
	}
	return conflict, nil
}

func (t *writeTx) TombstoneSecret(ctx context.Context, id string) (bool, error) {
	r, err := t.c.ExecContext(ctx, tombstoneSecretSQL, id)
	if err != nil {
		return false, interpretError(err)
	}
	n, err := r.RowsAffected()
	if n > 0 {
		t.tombstoned = true
	}
	return n > 0, interpretError(err)
}

func (t *writeTx) AddSecretCounts(ctx context.Context, p *driver.AddSecretCountsParams) error {
	return t.exec(ctx, addSecretCountsSQL, p.Secrets, p.Deleted)
}

func (t *writeTx) UpsertCheckpoint(ctx context.Context, cp *estype.ImportCheckpoint) error {
	return t.exec(ctx, upsertCheckpointSQL, cp.SourceID, cp.Kind, cp.Mode, cp.Froze, cp.BasePosition,
		cp.ByteOffset, cp.Line, cp.Events, cp.LastPosition, cp.HashState, cp.Done, cp.UpdatedAt)
}

func (t *writeTx) DeleteCheckpoint(ctx context.Context, sourceID string) error {
	return t.exec(ctx, deleteCheckpointSQL, sourceID)
}

func (t *writeTx) DeleteSnapshots(ctx context.Context) error { return t.exec(ctx, deleteSnapshotsSQL) }

func (t *writeTx) ClearStaging(ctx context.Context) error { return t.exec(ctx, clearStagingSQL) }

func (t *writeTx) DeleteEvents(ctx context.Context) error {
	if err := t.exec(ctx, deleteEventsSQL); err != nil {
		return err
	}
	return t.exec(ctx, resetEventStateSQL)
}

func (t *writeTx) SwapStaging(ctx context.Context) error {
	for _, q := range []string{deleteEventsSQL, t.es.swapMove, clearStagingSQL, swapStateSQL} {
		if err := t.exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func (t *writeTx) StageIncremental(ctx context.Context, p *driver.PushIncrementalParams) error {
	if err := t.exec(ctx, beginIncrementalSQL, p.ID, p.Now, p.Now); err != nil {
		return err
	}
	return interpretError(stageEvents(ctx, t.c, t.es, p))
}

// LockIncremental implements driver.Tx: the transaction holds SQLite's
// write lock, so the row only needs to exist.
func (t *writeTx) LockIncremental(ctx context.Context, id string) (bool, error) {
	found, err := incrementalExists(ctx, t.c, id)
	return found, interpretError(err)
}

// ClassifyIncremental implements driver.Tx in a temporary table of the
// writer connection.
func (t *writeTx) ClassifyIncremental(ctx context.Context, id string) (*driver.IncrementalWork, error) {
	w := &driver.IncrementalWork{}
	for _, q := range []string{createWorkSQL, clearWorkSQL} {
		if err := t.exec(ctx, q); err != nil {
			return nil, err
		}
	}
	if err := t.exec(ctx, t.es.classifyStaged, id, driver.IncrementalDuplicateStaged, driver.IncrementalDuplicateStored, driver.IncrementalFresh); err != nil {
		return nil, err
	}
	if err := t.c.QueryRowContext(ctx, newestTimestampSQL).Scan(&w.NewestTimestamp); err != nil {
		return nil, interpretError(err)
	}
	if err := t.exec(ctx, markOlderSQL, driver.IncrementalOlder, driver.IncrementalFresh, w.NewestTimestamp); err != nil {
		return nil, err
	}
	err := t.c.QueryRowContext(ctx, workCountsSQL, driver.IncrementalFresh, driver.IncrementalDuplicateStaged, driver.IncrementalDuplicateStored, driver.IncrementalOlder).
		Scan(&w.Fresh, &w.Duplicates, &w.Older)
	if err != nil {
		return nil, interpretError(err)
	}
	if w.Older > 0 {
		if err := t.c.QueryRowContext(ctx, oldestWorkSQL, driver.IncrementalOlder).Scan(&w.OldestAggregateID, &w.OldestTimestamp); err != nil {
			return nil, interpretError(err)
		}
	}
	return w, nil
}

func (t *writeTx) AppendIncremental(ctx context.Context, p *driver.AppendIncrementalParams) error {
	if err := t.exec(ctx, workBaseVersionSQL, driver.IncrementalFresh); err != nil {
		return err
	}
	return t.exec(ctx, t.es.appendWork, p.After, driver.IncrementalFresh)
}

func (t *writeTx) DeleteIncremental(ctx context.Context, id string) error {
	for _, q := range []string{createWorkSQL, clearWorkSQL, deleteStagedSQL, deleteIncrementalSQL} {
		var args []any
		if q == deleteStagedSQL || q == deleteIncrementalSQL {
			args = []any{id}
		}
		if err := t.exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}
