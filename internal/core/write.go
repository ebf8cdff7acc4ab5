package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// The store's write transactions, composed from the driver's operations.
// Every rule of a write is here, once: what a frozen store refuses, which
// positions events take, the audit event of a secret and its counters, the
// next secret idx, the outcomes of an import batch, the incremental commit's
// policy on older events. A dry run composes the same transactions over a
// DryWriter, which answers the operations without writing.

// ErrRollback ends a Write transaction that has nothing to write, or must
// not write what it did: Write rolls back and returns it, and the caller
// reports the outcome it recorded.
var ErrRollback = errors.New("eventstore: rollback")

// Writer runs write transactions: the store's driver, or a dry run.
type Writer interface {
	Write(ctx context.Context, bulk bool, fn func(tx driver.Tx) error) error
	ReadState(ctx context.Context) (*driver.StoreState, error)
}

// DriverWriter is a Writer on the store's driver; a committed write wakes
// the store's subscriptions.
type DriverWriter struct {
	D    driver.Driver
	Wake func() // called after each commit; nil: none
}

func (w DriverWriter) Write(ctx context.Context, bulk bool, fn func(tx driver.Tx) error) error {
	err := w.D.Write(ctx, &driver.WriteParams{Bulk: bulk}, fn)
	switch {
	case errors.Is(err, ErrRollback):
		return nil
	case err == nil && w.Wake != nil:
		w.Wake()
	}
	return err
}

// AwaitWriters waits for the write transactions in flight to end, by taking
// the store lock and writing nothing. A resumed job calls it before reading
// its checkpoint: a batch of a process killed while its COMMIT was on the
// way to the server may still be committing there (PostgreSQL finishes it),
// and the checkpoint read after it includes that batch.
func AwaitWriters(ctx context.Context, w Writer) error {
	return w.Write(ctx, false, func(driver.Tx) error { return ErrRollback })
}

func (w DriverWriter) ReadState(ctx context.Context) (*driver.StoreState, error) {
	return w.D.ReadState(ctx)
}

// AppendTx appends the requests of p after the store's last position: the
// generic append, for drivers without an Appender and for groups with an
// expectation (expects, nil when none: one per request). A frozen store
// writes nothing; a request with a stored pair writes nothing and the next
// one takes its positions. A request whose expectation is resolved takes
// the versions after its aggregate's last one, read under the lock and
// counting the earlier requests' events; when the expectation fails it
// writes nothing and failed holds its error.
func AppendTx(ctx context.Context, w Writer, p *driver.AppendParams, expects []estype.Expect) (res *driver.AppendResult, failed map[int]error, err error) {
	res = &driver.AppendResult{}
	var rows []estype.StoredEvent
	err = w.Write(ctx, false, func(tx driver.Tx) error {
		*res, failed = driver.AppendResult{}, nil
		st := tx.State()
		if st.Frozen {
			res.Frozen = true
			return ErrRollback
		}
		last, err := lastVersions(ctx, tx, p, expects)
		if err != nil {
			return err
		}
		pos := st.LastPosition
		res.FirstPosition = pos + 1
		for i, r := range p.Requests {
			if expects != nil && expects[i].Resolved() {
				id := r.Events[0].AggregateID
				v := last[id]
				switch {
				case !expects[i].Allows(v):
					failed = setFailed(failed, i, expectedConflict(id, expects[i], v))
					continue
				case v > estype.MaxSafeInteger-int64(len(r.Events)):
					failed = setFailed(failed, i, &estype.InvalidEventError{Index: len(r.Events) - 1, Field: "aggregateVersion",
						Reason: fmt.Sprintf("aggregate %q is at version %d: %d more events would pass 2^53-1", id, v, len(r.Events))})
					continue
				}
				for j := range r.Events {
					r.Events[j].AggregateVersion = v + 1 + int64(j)
				}
			}
			rows = rows[:0]
			for _, e := range r.Events {
				rows = append(rows, estype.StoredEvent{Event: e, Position: pos + 1 + int64(len(rows))})
			}
			k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Events, Events: rows})
			if err != nil {
				return err
			}
			if k >= 0 {
				res.Conflicts = append(res.Conflicts, driver.AppendConflict{Request: i, AggregateID: rows[k].AggregateID, AggregateVersion: rows[k].AggregateVersion})
				continue
			}
			for _, e := range r.Events {
				if v, tracked := last[e.AggregateID]; tracked && e.AggregateVersion > v {
					last[e.AggregateID] = e.AggregateVersion
				}
			}
			pos += int64(len(rows))
		}
		if n := pos - st.LastPosition; n > 0 {
			return tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: pos, Events: n})
		}
		return ErrRollback
	})
	clear(rows)
	if err != nil {
		return nil, nil, err
	}
	return res, failed, nil
}

// lastVersions reads, under the store lock, the last version of every
// aggregate a resolved request of p appends to; nil when there is none.
func lastVersions(ctx context.Context, tx driver.Tx, p *driver.AppendParams, expects []estype.Expect) (map[string]int64, error) {
	var ids []string
	last := map[string]int64{}
	for i, ex := range expects {
		if id := p.Requests[i].Events[0].AggregateID; ex.Resolved() {
			if _, dup := last[id]; !dup {
				last[id] = 0
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vs, err := tx.LastVersions(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		last[id] = vs[i]
	}
	return last, nil
}

func setFailed(m map[int]error, i int, err error) map[int]error {
	if m == nil {
		m = map[int]error{}
	}
	m[i] = err
	return m
}

// SetFrozenTx sets the frozen flag, waiting for in-flight writers, and
// reports the flag and reason before the call. It writes nothing when the
// flag already has the requested value.
func SetFrozenTx(ctx context.Context, w Writer, frozen bool, reason string) (was driver.State, err error) {
	err = w.Write(ctx, false, func(tx driver.Tx) error {
		was = tx.State()
		if was.Frozen == frozen {
			return ErrRollback
		}
		return tx.SetFrozen(ctx, &driver.SetFrozenParams{Frozen: frozen, Reason: reason})
	})
	return was, err
}

// auditTx writes a secret's audit event at the next position.
func auditTx(ctx context.Context, tx driver.Tx, ev *estype.Event) (int64, error) {
	pos := tx.State().LastPosition + 1
	k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Events, Events: []estype.StoredEvent{{Event: *ev, Position: pos}}})
	switch {
	case err != nil:
		return 0, err
	case k >= 0:
		// The aggregate id has ten random characters: a repeat is a bug.
		return 0, &estype.ConflictError{AggregateID: ev.AggregateID, AggregateVersion: ev.AggregateVersion}
	}
	return pos, tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: pos, Events: 1})
}

// SecretWrite is the outcome of SetSecretTx and DeleteSecretTx.
type SecretWrite struct {
	Frozen   bool  // nothing written: the store is frozen
	Exists   bool  // set: nothing written, the id is or was in use
	Deleted  bool  // delete: a live secret became a tombstone
	Idx      int64 // set: the new secret's idx
	Position int64 // the audit event's position
}

// secretTx writes a secret and its audit event, unless the store is
// frozen: change writes the secret's row into res and returns the counts
// it adds, or nil when it wrote nothing (then neither does secretTx).
func secretTx(ctx context.Context, w Writer, ev *estype.Event, change func(tx driver.Tx, res *SecretWrite) (*driver.AddSecretCountsParams, error)) (*SecretWrite, error) {
	res := &SecretWrite{}
	err := w.Write(ctx, false, func(tx driver.Tx) error {
		*res = SecretWrite{}
		if tx.State().Frozen {
			res.Frozen = true
			return ErrRollback
		}
		counts, err := change(tx, res)
		if err != nil || counts == nil {
			return err
		}
		if err := tx.AddSecretCounts(ctx, counts); err != nil {
			return err
		}
		res.Position, err = auditTx(ctx, tx, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// SetSecretTx inserts a secret at the next idx, unless the id was ever
// used.
func SetSecretTx(ctx context.Context, w Writer, id, secret string, ev *estype.Event) (*SecretWrite, error) {
	return secretTx(ctx, w, ev, func(tx driver.Tx, res *SecretWrite) (*driver.AddSecretCountsParams, error) {
		last, err := tx.MaxSecretIdx(ctx)
		if err != nil {
			return nil, err
		}
		res.Idx = last + 1
		k, err := tx.InsertSecrets(ctx, []estype.Secret{{Idx: res.Idx, ID: id, Secret: &secret}})
		switch {
		case err != nil:
			return nil, err
		case k >= 0:
			res.Exists = true
			return nil, nil
		}
		return &driver.AddSecretCountsParams{Secrets: 1}, nil
	})
}

// DeleteSecretTx replaces a live secret by a tombstone; it writes nothing
// when the id is missing or deleted already.
func DeleteSecretTx(ctx context.Context, w Writer, id string, ev *estype.Event) (*SecretWrite, error) {
	return secretTx(ctx, w, ev, func(tx driver.Tx, res *SecretWrite) (*driver.AddSecretCountsParams, error) {
		deleted, err := tx.TombstoneSecret(ctx, id)
		if err != nil || !deleted {
			return nil, err
		}
		res.Deleted = true
		return &driver.AddSecretCountsParams{Deleted: 1}, nil
	})
}

// ImportBatch is one batch of an import, written in one transaction with
// the import's checkpoint.
type ImportBatch struct {
	Table           driver.Table
	Events          []estype.StoredEvent // positions as given, strictly increasing
	Checkpoint      *estype.ImportCheckpoint
	Unfreeze        bool // clear the frozen flag in the same transaction
	DeleteSnapshots bool // delete every snapshot in the same transaction
}

// ImportBatchResult is the outcome of ImportBatchTx. When advanced or
// conflict >= 0 nothing was written.
type ImportBatchResult struct {
	LastPosition int64 // the store's last position before the batch
	Advanced     bool  // the first position is not above the store's last
	Conflict     int   // index of the first event whose pair is in the table, or -1
}

// ImportBatchTx writes an import batch: into events, only above the store's
// last position, advancing it; into staging as given; either way nothing
// when a pair is already in the table. The checkpoint and the batch's state
// changes commit with the events, or nothing does.
func ImportBatchTx(ctx context.Context, w Writer, b *ImportBatch) (*ImportBatchResult, error) {
	res := &ImportBatchResult{}
	err := w.Write(ctx, true, func(tx driver.Tx) error {
		*res = ImportBatchResult{LastPosition: tx.State().LastPosition, Conflict: -1}
		if n := len(b.Events); n > 0 {
			if b.Table == driver.Events && b.Events[0].Position <= res.LastPosition {
				res.Advanced = true
				return ErrRollback
			}
			k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: b.Table, Events: b.Events})
			switch {
			case err != nil:
				return err
			case k >= 0:
				res.Conflict = k
				return ErrRollback
			}
			if b.Table == driver.Events {
				if err := tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: b.Events[n-1].Position, Events: int64(n)}); err != nil {
					return err
				}
			}
		}
		return FinishImportTx(ctx, tx, b.Checkpoint, b.Unfreeze, b.DeleteSnapshots)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// FinishImportTx writes an import's checkpoint and the state changes that
// go with it.
func FinishImportTx(ctx context.Context, tx driver.Tx, cp *estype.ImportCheckpoint, unfreeze, deleteSnapshots bool) error {
	if cp != nil {
		if err := tx.UpsertCheckpoint(ctx, cp); err != nil {
			return err
		}
	}
	if unfreeze {
		if err := tx.SetFrozen(ctx, &driver.SetFrozenParams{}); err != nil {
			return err
		}
	}
	if deleteSnapshots {
		return tx.DeleteSnapshots(ctx)
	}
	return nil
}

// SwapStagingTx replaces the store's events and snapshots by the staged
// events, with the import's final checkpoint.
func SwapStagingTx(ctx context.Context, w Writer, cp *estype.ImportCheckpoint, unfreeze bool) error {
	return w.Write(ctx, true, func(tx driver.Tx) error {
		if err := tx.SwapStaging(ctx); err != nil {
			return err
		}
		return FinishImportTx(ctx, tx, cp, unfreeze, true)
	})
}

// AbortImport says what AbortImportTx undoes.
type AbortImport struct {
	SourceID     string
	ClearStaging bool // empty the staging table
	DeleteEvents bool // delete every event (an AUTO import into an empty store)
	Unfreeze     bool
}

// AbortImportTx undoes an unfinished import and deletes its checkpoint.
func AbortImportTx(ctx context.Context, w Writer, a *AbortImport) error {
	return w.Write(ctx, true, func(tx driver.Tx) error {
		if a.ClearStaging {
			if err := tx.ClearStaging(ctx); err != nil {
				return err
			}
		}
		if a.DeleteEvents {
			if err := tx.DeleteEvents(ctx); err != nil {
				return err
			}
		}
		if a.Unfreeze {
			if err := tx.SetFrozen(ctx, &driver.SetFrozenParams{}); err != nil {
				return err
			}
		}
		return tx.DeleteCheckpoint(ctx, a.SourceID)
	})
}

// ImportSecretsTx writes a batch of secrets with the import's checkpoint:
// each keeps its idx, a negative idx takes the next free one; nothing is
// written when an id or idx is in use. It returns the index of the first
// such secret, or -1.
func ImportSecretsTx(ctx context.Context, w Writer, secrets []estype.Secret, cp *estype.ImportCheckpoint) (int, error) {
	conflict := -1
	rows := make([]estype.Secret, len(secrets))
	err := w.Write(ctx, true, func(tx driver.Tx) error {
		conflict = -1
		if n := len(secrets); n > 0 {
			last, err := tx.MaxSecretIdx(ctx)
			if err != nil {
				return err
			}
			next, deleted := last+1, int64(0)
			for i, s := range secrets {
				rows[i] = estype.Secret(s)
				if s.Idx < 0 {
					rows[i].Idx = next
				}
				next = max(next, rows[i].Idx+1)
				if s.Secret == nil {
					deleted++
				}
			}
			k, err := tx.InsertSecrets(ctx, rows)
			switch {
			case err != nil:
				return err
			case k >= 0:
				conflict = k
				return ErrRollback
			}
			if err := tx.AddSecretCounts(ctx, &driver.AddSecretCountsParams{Secrets: int64(n), Deleted: deleted}); err != nil {
				return err
			}
		}
		return FinishImportTx(ctx, tx, cp, false, false)
	})
	return conflict, err
}

// IncrementalCommit is the outcome of CommitIncrementalTx.
type IncrementalCommit struct {
	NotFound bool
	Frozen   bool
	Refused  bool // older events and OlderFail: nothing written
	Work     driver.IncrementalWork
	First    int64 // position of the first appended event
}

// CommitIncrementalTx commits an open incremental import: it drops the
// duplicates the driver classified, refuses (OlderFail) or skips
// (OlderSkip) the events older than the store's newest, appends the rest
// after the store's last position and closes the import; a frozen store
// writes nothing. A dry run passes the events as dry: they are staged under
// a new import id in the same transaction, and all of it is rolled back.
func CommitIncrementalTx(ctx context.Context, w Writer, id string, refuseOlder bool, dry *driver.PushIncrementalParams) (*IncrementalCommit, error) {
	res := &IncrementalCommit{}
	err := w.Write(ctx, true, func(tx driver.Tx) error {
		*res = IncrementalCommit{}
		st := tx.State()
		if dry != nil {
			if err := tx.StageIncremental(ctx, dry); err != nil {
				return err
			}
			id = dry.ID
		}
		found, err := tx.LockIncremental(ctx, id)
		switch {
		case err != nil:
			return err
		case !found:
			res.NotFound = true
			return ErrRollback
		case st.Frozen:
			res.Frozen = true
			return ErrRollback
		}
		work, err := tx.ClassifyIncremental(ctx, id)
		if err != nil {
			return err
		}
		res.Work = *work
		if work.Older > 0 && refuseOlder {
			res.Refused = true
			return ErrRollback
		}
		if work.Fresh > 0 {
			res.First = st.LastPosition + 1
			if err := tx.AppendIncremental(ctx, &driver.AppendIncrementalParams{After: st.LastPosition}); err != nil {
				return err
			}
			if err := tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: st.LastPosition + work.Fresh, Events: work.Fresh}); err != nil {
				return err
			}
		}
		if err := tx.DeleteIncremental(ctx, id); err != nil {
			return err
		}
		if dry != nil {
			return ErrRollback
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// expectedConflict is the conflict of a request whose expectation failed.
func expectedConflict(aggregateID string, expect estype.Expect, last int64) *estype.ConflictError {
	return &estype.ConflictError{AggregateID: aggregateID, AggregateVersion: last, Expected: expect}
}
