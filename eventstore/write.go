package eventstore

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
// dryWriter, which answers the operations without writing.

// errRollback ends a Write transaction that has nothing to write, or must
// not write what it did: Write rolls back and returns it, and the caller
// reports the outcome it recorded.
var errRollback = errors.New("eventstore: rollback")

// writer runs write transactions: the store's driver, or a dry run.
type writer interface {
	write(ctx context.Context, bulk bool, fn func(tx driver.Tx) error) error
	readState(ctx context.Context) (*driver.StoreState, error)
}

// driverWriter is a writer on the store's driver; a committed write wakes
// the store's subscriptions.
type driverWriter struct {
	d    driver.Driver
	wake *notifier
}

func (w driverWriter) write(ctx context.Context, bulk bool, fn func(tx driver.Tx) error) error {
	err := w.d.Write(ctx, &driver.WriteParams{Bulk: bulk}, fn)
	switch {
	case errors.Is(err, errRollback):
		return nil
	case err == nil && w.wake != nil:
		w.wake.notify()
	}
	return err
}

// awaitWriters waits for the write transactions in flight to end, by taking
// the store lock and writing nothing. A resumed job calls it before reading
// its checkpoint: a batch of a process killed while its COMMIT was on the
// way to the server may still be committing there (PostgreSQL finishes it),
// and the checkpoint read after it includes that batch.
func awaitWriters(ctx context.Context, w writer) error {
	return w.write(ctx, false, func(driver.Tx) error { return errRollback })
}

func (w driverWriter) readState(ctx context.Context) (*driver.StoreState, error) {
	return w.d.ReadState(ctx)
}

// appendTx appends the requests of p after the store's last position: the
// generic append, for drivers without an Appender and for groups with an
// expectation (expects, nil when none: one per request). A frozen store
// writes nothing; a request with a stored pair writes nothing and the next
// one takes its positions. A request whose expectation is resolved takes
// the versions after its aggregate's last one, read under the lock and
// counting the earlier requests' events; when the expectation fails it
// writes nothing and failed holds its error.
func appendTx(ctx context.Context, w writer, p *driver.AppendParams, expects []Expect) (res *driver.AppendResult, failed map[int]error, err error) {
	res = &driver.AppendResult{}
	var rows []estype.StoredEvent
	err = w.write(ctx, false, func(tx driver.Tx) error {
		*res, failed = driver.AppendResult{}, nil
		st := tx.State()
		if st.Frozen {
			res.Frozen = true
			return errRollback
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
				case v > MaxSafeInteger-int64(len(r.Events)):
					failed = setFailed(failed, i, &InvalidEventError{Index: len(r.Events) - 1, Field: "aggregateVersion",
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
		return errRollback
	})
	clear(rows)
	if err != nil {
		return nil, nil, err
	}
	return res, failed, nil
}

// lastVersions reads, under the store lock, the last version of every
// aggregate a resolved request of p appends to; nil when there is none.
func lastVersions(ctx context.Context, tx driver.Tx, p *driver.AppendParams, expects []Expect) (map[string]int64, error) {
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

// setFrozenTx sets the frozen flag, waiting for in-flight writers, and
// reports the flag and reason before the call. It writes nothing when the
// flag already has the requested value.
func setFrozenTx(ctx context.Context, w writer, frozen bool, reason string) (was driver.State, err error) {
	err = w.write(ctx, false, func(tx driver.Tx) error {
		was = tx.State()
		if was.Frozen == frozen {
			return errRollback
		}
		return tx.SetFrozen(ctx, &driver.SetFrozenParams{Frozen: frozen, Reason: reason})
	})
	return was, err
}

// auditTx writes a secret's audit event at the next position.
func auditTx(ctx context.Context, tx driver.Tx, ev *Event) (int64, error) {
	pos := tx.State().LastPosition + 1
	k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: driver.Events, Events: []estype.StoredEvent{{Event: estype.Event(*ev), Position: pos}}})
	switch {
	case err != nil:
		return 0, err
	case k >= 0:
		// The aggregate id has ten random characters: a repeat is a bug.
		return 0, &ConflictError{AggregateID: ev.AggregateID, AggregateVersion: ev.AggregateVersion}
	}
	return pos, tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: pos, Events: 1})
}

// secretWrite is the outcome of setSecretTx and deleteSecretTx.
type secretWrite struct {
	frozen   bool  // nothing written: the store is frozen
	exists   bool  // set: nothing written, the id is or was in use
	deleted  bool  // delete: a live secret became a tombstone
	idx      int64 // set: the new secret's idx
	position int64 // the audit event's position
}

// secretTx writes a secret and its audit event, unless the store is
// frozen: change writes the secret's row into res and returns the counts
// it adds, or nil when it wrote nothing (then neither does secretTx).
func secretTx(ctx context.Context, w writer, ev *Event, change func(tx driver.Tx, res *secretWrite) (*driver.AddSecretCountsParams, error)) (*secretWrite, error) {
	res := &secretWrite{}
	err := w.write(ctx, false, func(tx driver.Tx) error {
		*res = secretWrite{}
		if tx.State().Frozen {
			res.frozen = true
			return errRollback
		}
		counts, err := change(tx, res)
		if err != nil || counts == nil {
			return err
		}
		if err := tx.AddSecretCounts(ctx, counts); err != nil {
			return err
		}
		res.position, err = auditTx(ctx, tx, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// setSecretTx inserts a secret at the next idx, unless the id was ever
// used.
func setSecretTx(ctx context.Context, w writer, id, secret string, ev *Event) (*secretWrite, error) {
	return secretTx(ctx, w, ev, func(tx driver.Tx, res *secretWrite) (*driver.AddSecretCountsParams, error) {
		last, err := tx.MaxSecretIdx(ctx)
		if err != nil {
			return nil, err
		}
		res.idx = last + 1
		k, err := tx.InsertSecrets(ctx, []estype.Secret{{Idx: res.idx, ID: id, Secret: &secret}})
		switch {
		case err != nil:
			return nil, err
		case k >= 0:
			res.exists = true
			return nil, nil
		}
		return &driver.AddSecretCountsParams{Secrets: 1}, nil
	})
}

// deleteSecretTx replaces a live secret by a tombstone; it writes nothing
// when the id is missing or deleted already.
func deleteSecretTx(ctx context.Context, w writer, id string, ev *Event) (*secretWrite, error) {
	return secretTx(ctx, w, ev, func(tx driver.Tx, res *secretWrite) (*driver.AddSecretCountsParams, error) {
		deleted, err := tx.TombstoneSecret(ctx, id)
		if err != nil || !deleted {
			return nil, err
		}
		res.deleted = true
		return &driver.AddSecretCountsParams{Deleted: 1}, nil
	})
}

// importBatch is one batch of an import, written in one transaction with
// the import's checkpoint.
type importBatch struct {
	table           driver.Table
	events          []estype.StoredEvent // positions as given, strictly increasing
	checkpoint      *ImportCheckpoint
	unfreeze        bool // clear the frozen flag in the same transaction
	deleteSnapshots bool // delete every snapshot in the same transaction
}

// importBatchResult is the outcome of importBatchTx. When advanced or
// conflict >= 0 nothing was written.
type importBatchResult struct {
	lastPosition int64 // the store's last position before the batch
	advanced     bool  // the first position is not above the store's last
	conflict     int   // index of the first event whose pair is in the table, or -1
}

// importBatchTx writes an import batch: into events, only above the store's
// last position, advancing it; into staging as given; either way nothing
// when a pair is already in the table. The checkpoint and the batch's state
// changes commit with the events, or nothing does.
func importBatchTx(ctx context.Context, w writer, b *importBatch) (*importBatchResult, error) {
	res := &importBatchResult{}
	err := w.write(ctx, true, func(tx driver.Tx) error {
		*res = importBatchResult{lastPosition: tx.State().LastPosition, conflict: -1}
		if n := len(b.events); n > 0 {
			if b.table == driver.Events && b.events[0].Position <= res.lastPosition {
				res.advanced = true
				return errRollback
			}
			k, err := tx.InsertEvents(ctx, &driver.InsertEventsParams{Table: b.table, Events: b.events})
			switch {
			case err != nil:
				return err
			case k >= 0:
				res.conflict = k
				return errRollback
			}
			if b.table == driver.Events {
				if err := tx.AdvanceState(ctx, &driver.AdvanceStateParams{LastPosition: b.events[n-1].Position, Events: int64(n)}); err != nil {
					return err
				}
			}
		}
		return finishImportTx(ctx, tx, b.checkpoint, b.unfreeze, b.deleteSnapshots)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// finishImportTx writes an import's checkpoint and the state changes that
// go with it.
func finishImportTx(ctx context.Context, tx driver.Tx, cp *ImportCheckpoint, unfreeze, deleteSnapshots bool) error {
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

// swapStagingTx replaces the store's events and snapshots by the staged
// events, with the import's final checkpoint.
func swapStagingTx(ctx context.Context, w writer, cp *ImportCheckpoint, unfreeze bool) error {
	return w.write(ctx, true, func(tx driver.Tx) error {
		if err := tx.SwapStaging(ctx); err != nil {
			return err
		}
		return finishImportTx(ctx, tx, cp, unfreeze, true)
	})
}

// abortImport says what abortImportTx undoes.
type abortImport struct {
	sourceID     string
	clearStaging bool // empty the staging table
	deleteEvents bool // delete every event (an AUTO import into an empty store)
	unfreeze     bool
}

// abortImportTx undoes an unfinished import and deletes its checkpoint.
func abortImportTx(ctx context.Context, w writer, a *abortImport) error {
	return w.write(ctx, true, func(tx driver.Tx) error {
		if a.clearStaging {
			if err := tx.ClearStaging(ctx); err != nil {
				return err
			}
		}
		if a.deleteEvents {
			if err := tx.DeleteEvents(ctx); err != nil {
				return err
			}
		}
		if a.unfreeze {
			if err := tx.SetFrozen(ctx, &driver.SetFrozenParams{}); err != nil {
				return err
			}
		}
		return tx.DeleteCheckpoint(ctx, a.sourceID)
	})
}

// importSecretsTx writes a batch of secrets with the import's checkpoint:
// each keeps its idx, a negative idx takes the next free one; nothing is
// written when an id or idx is in use. It returns the index of the first
// such secret, or -1.
func importSecretsTx(ctx context.Context, w writer, secrets []Secret, cp *ImportCheckpoint) (int, error) {
	conflict := -1
	rows := make([]estype.Secret, len(secrets))
	err := w.write(ctx, true, func(tx driver.Tx) error {
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
				return errRollback
			}
			if err := tx.AddSecretCounts(ctx, &driver.AddSecretCountsParams{Secrets: int64(n), Deleted: deleted}); err != nil {
				return err
			}
		}
		return finishImportTx(ctx, tx, cp, false, false)
	})
	return conflict, err
}

// incrementalCommit is the outcome of commitIncrementalTx.
type incrementalCommit struct {
	notFound bool
	frozen   bool
	refused  bool // older events and OlderFail: nothing written
	work     driver.IncrementalWork
	first    int64 // position of the first appended event
}

// commitIncrementalTx commits an open incremental import: it drops the
// duplicates the driver classified, refuses (OlderFail) or skips
// (OlderSkip) the events older than the store's newest, appends the rest
// after the store's last position and closes the import; a frozen store
// writes nothing. A dry run passes the events as dry: they are staged under
// a new import id in the same transaction, and all of it is rolled back.
func commitIncrementalTx(ctx context.Context, w writer, id string, older OlderPolicy, dry *driver.PushIncrementalParams) (*incrementalCommit, error) {
	res := &incrementalCommit{}
	err := w.write(ctx, true, func(tx driver.Tx) error {
		*res = incrementalCommit{}
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
			res.notFound = true
			return errRollback
		case st.Frozen:
			res.frozen = true
			return errRollback
		}
		work, err := tx.ClassifyIncremental(ctx, id)
		if err != nil {
			return err
		}
		res.work = *work
		if work.Older > 0 && older == OlderFail {
			res.refused = true
			return errRollback
		}
		if work.Fresh > 0 {
			res.first = st.LastPosition + 1
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
			return errRollback
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
