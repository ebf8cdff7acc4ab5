package core

import (
	"context"
	"errors"
	"hash/maphash"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// DryWriter runs an import's write transactions without writing: the
// transactions are the real ones (write.go), composed from the same
// operations, and dryTx answers each operation as the database would, from
// reads and from what the import pretends to have written. Nothing at all
// is written: no event, no checkpoint, no freeze, no staging. A transaction
// whose fn fails leaves the pretended state as it was.
type DryWriter struct {
	d      driver.Driver
	last   int64               // the store's last position as if the import had written
	seed   maphash.Seed        // for seen
	seen   map[uint64]struct{} // pairs the import pretends to have written
	frozen bool
	reason string
	staged bool // the import wrote to staging: the store's position is its own

	// Secrets: the store's ids and idxs (loaded at the first batch) and
	// those the import pretends to have written.
	secretIDs  map[string]bool
	secretIdxs map[int64]bool
	maxIdx     int64
}

func NewDryWriter(ctx context.Context, d driver.Driver) (*DryWriter, error) {
	st, err := d.ReadState(ctx)
	if err != nil {
		return nil, err
	}
	return &DryWriter{d: d, last: st.LastPosition, frozen: st.Frozen, reason: st.FrozenReason, seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}, nil
}

// secretsPage is the page size of a dry run's read of the secrets.
const secretsPage = 10_000

// errDryRun is an operation a dry run cannot answer without writing.
var errDryRun = errors.New("eventstore: operation not available in a dry run")

func (w *DryWriter) Write(ctx context.Context, _ bool, fn func(tx driver.Tx) error) error {
	tx := &dryTx{w: w, state: driver.State{Frozen: w.frozen, FrozenReason: w.reason, LastPosition: w.last}, frozen: w.frozen, reason: w.reason, last: w.last}
	err := fn(tx)
	if errors.Is(err, ErrRollback) {
		return nil
	}
	if err != nil {
		return err
	}
	// "Commit": what the transaction wrote becomes the pretended state.
	for _, h := range tx.pairs {
		w.seen[h] = struct{}{}
	}
	for _, s := range tx.secrets {
		w.secretIDs[s.ID], w.secretIdxs[s.Idx] = true, true
		w.maxIdx = max(w.maxIdx, s.Idx)
	}
	w.last, w.frozen, w.reason = tx.last, tx.frozen, tx.reason
	w.staged = w.staged || tx.staged
	return nil
}

// readState reports the state as if the import had written.
func (w *DryWriter) ReadState(ctx context.Context) (*driver.StoreState, error) {
	st, err := w.d.ReadState(ctx)
	if err != nil {
		return nil, err
	}
	if !w.staged {
		st.LastPosition = max(st.LastPosition, w.last)
	}
	st.Frozen, st.FrozenReason = w.frozen, w.reason
	return st, nil
}

func (w *DryWriter) pairHash(e *estype.StoredEvent) uint64 {
	var h maphash.Hash
	h.SetSeed(w.seed)
	_, _ = h.WriteString(e.AggregateID)
	var v [8]byte
	for i := range v {
		v[i] = byte(e.AggregateVersion >> (8 * i))
	}
	_, _ = h.Write(v[:])
	return h.Sum64()
}

// loadSecrets reads the store's secret ids and idxs once.
func (w *DryWriter) loadSecrets(ctx context.Context) error {
	if w.secretIDs != nil {
		return nil
	}
	ids, idxs := map[string]bool{}, map[int64]bool{}
	for min := int64(0); ; {
		page, err := w.d.ListSecrets(ctx, &driver.ListSecretsParams{MinIdx: min, IncludeDeleted: true, Limit: secretsPage})
		if err != nil {
			return err
		}
		for _, sec := range page {
			ids[sec.ID], idxs[sec.Idx] = true, true
			w.maxIdx = max(w.maxIdx, sec.Idx)
		}
		if len(page) < secretsPage {
			break
		}
		min = page[len(page)-1].Idx + 1
	}
	w.secretIDs, w.secretIdxs = ids, idxs
	return nil
}

// dryTx is one pretended transaction of a DryWriter.
type dryTx struct {
	w       *DryWriter
	state   driver.State
	last    int64
	frozen  bool
	reason  string
	staged  bool
	pairs   []uint64
	secrets []estype.Secret
}

var _ driver.Tx = (*dryTx)(nil)

func (tx *dryTx) State() driver.State { return tx.state }

// InsertEvents reports the first event whose pair is stored (events only)
// or was written earlier by the import. A pair seen earlier in the source is
// found by its 64-bit hash: a false conflict has a chance of about n²/2⁶⁵
// in a source of n events.
func (tx *dryTx) InsertEvents(ctx context.Context, p *driver.InsertEventsParams) (int, error) {
	conflict := -1
	hashes := make([]uint64, len(p.Events))
	batch := make(map[uint64]struct{}, len(p.Events))
	for i := range p.Events {
		h := tx.w.pairHash(&p.Events[i])
		_, dup := tx.w.seen[h]
		if _, again := batch[h]; dup || again {
			conflict = i
			break
		}
		batch[h], hashes[i] = struct{}{}, h
	}
	if p.Table == driver.Events {
		k, err := tx.w.d.FirstStoredPair(ctx, p.Events)
		if err != nil {
			return 0, err
		}
		if k >= 0 && (conflict < 0 || k < conflict) {
			conflict = k
		}
	} else {
		tx.staged = true
	}
	if conflict >= 0 {
		return conflict, nil
	}
	tx.pairs = append(tx.pairs, hashes...)
	return -1, nil
}

func (tx *dryTx) AdvanceState(_ context.Context, p *driver.AdvanceStateParams) error {
	tx.last = p.LastPosition
	return nil
}

func (tx *dryTx) SetFrozen(_ context.Context, p *driver.SetFrozenParams) error {
	tx.frozen, tx.reason = p.Frozen, p.Reason
	return nil
}

func (tx *dryTx) MaxSecretIdx(ctx context.Context) (int64, error) {
	if err := tx.w.loadSecrets(ctx); err != nil {
		return 0, err
	}
	return tx.w.maxIdx, nil
}

func (tx *dryTx) InsertSecrets(ctx context.Context, secrets []estype.Secret) (int, error) {
	if err := tx.w.loadSecrets(ctx); err != nil {
		return 0, err
	}
	ids, idxs := map[string]bool{}, map[int64]bool{}
	for i, s := range secrets {
		if tx.w.secretIDs[s.ID] || tx.w.secretIdxs[s.Idx] || ids[s.ID] || idxs[s.Idx] {
			return i, nil
		}
		ids[s.ID], idxs[s.Idx] = true, true
	}
	tx.secrets = append(tx.secrets, secrets...)
	return -1, nil
}

func (tx *dryTx) TombstoneSecret(context.Context, string) (bool, error) { return false, errDryRun }

// LastVersions reads the store; a dry run (an import's) never needs it.
func (tx *dryTx) LastVersions(context.Context, []string) ([]int64, error) {
	return nil, errDryRun
}

func (tx *dryTx) AddSecretCounts(context.Context, *driver.AddSecretCountsParams) error { return nil }

func (tx *dryTx) UpsertCheckpoint(context.Context, *estype.ImportCheckpoint) error { return nil }

func (tx *dryTx) DeleteCheckpoint(context.Context, string) error { return nil }

func (tx *dryTx) DeleteSnapshots(context.Context) error { return nil }

func (tx *dryTx) ClearStaging(context.Context) error { return nil }

func (tx *dryTx) DeleteEvents(context.Context) error {
	tx.last = 0
	return nil
}

func (tx *dryTx) SwapStaging(context.Context) error { return nil }

func (tx *dryTx) StageIncremental(context.Context, *driver.PushIncrementalParams) error {
	return errDryRun
}

func (tx *dryTx) LockIncremental(context.Context, string) (bool, error) { return false, errDryRun }

func (tx *dryTx) ClassifyIncremental(context.Context, string) (*driver.IncrementalWork, error) {
	return nil, errDryRun
}

func (tx *dryTx) AppendIncremental(context.Context, *driver.AppendIncrementalParams) error {
	return errDryRun
}

func (tx *dryTx) DeleteIncremental(context.Context, string) error { return errDryRun }
