package eventstore

import (
	"context"
	"hash/maphash"
)

// dryDialect runs an import's state machine without writing: it answers
// every write as the database would (positions already passed, pairs
// already stored or already seen earlier in the source) from reads and from
// what it pretends to have written, and writes nothing at all: no event, no
// checkpoint, no freeze, no staging. Reads go to the real dialect.
type dryDialect struct {
	Dialect
	last   int64               // the store's last position as if the import had written
	seed   maphash.Seed        // for seen
	seen   map[uint64]struct{} // pairs the import pretends to have written
	frozen bool
	staged bool // the target is a staging table: stored events do not count

	// Secrets: the store's ids and idxs (loaded at the first batch) and
	// those the import pretends to have written.
	secretIDs  map[string]bool
	secretIdxs map[int64]bool
	maxIdx     int64
}

func newDryDialect(ctx context.Context, d Dialect) (*dryDialect, error) {
	st, err := d.ReadState(ctx)
	if err != nil {
		return nil, err
	}
	return &dryDialect{Dialect: d, last: st.LastPosition, frozen: st.Frozen, seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}, nil
}

func (d *dryDialect) pairHash(e *StoredEvent) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	_, _ = h.WriteString(e.AggregateID)
	var v [8]byte
	for i := range v {
		v[i] = byte(e.AggregateVersion >> (8 * i))
	}
	_, _ = h.Write(v[:])
	return h.Sum64()
}

// ImportEvents checks the batch as the real one would and "writes" it.
// A pair seen earlier in the source is reported by its 64-bit hash: a
// false conflict has a chance of about n²/2⁶⁵ in a source of n events.
func (d *dryDialect) ImportEvents(ctx context.Context, p *ImportEventsParams) (*ImportEventsResult, error) {
	staged := p.Target == ImportIntoStaging
	res := &ImportEventsResult{LastPosition: d.last, Conflict: -1}
	if staged && !d.staged {
		d.staged, d.last, res.LastPosition = true, 0, 0
	}
	if len(p.Events) == 0 {
		return res, nil
	}
	if !staged && p.Events[0].Position <= d.last {
		res.Advanced = true
		return res, nil
	}
	for i := range p.Events {
		if _, dup := d.seen[d.pairHash(&p.Events[i])]; dup {
			res.Conflict = i
			break
		}
	}
	if !staged {
		k, err := d.Dialect.FirstStoredPair(ctx, p.Events)
		if err != nil {
			return nil, err
		}
		if k >= 0 && (res.Conflict < 0 || k < res.Conflict) {
			res.Conflict = k
		}
	}
	if res.Conflict >= 0 {
		return res, nil
	}
	for i := range p.Events {
		d.seen[d.pairHash(&p.Events[i])] = struct{}{}
	}
	d.last = max(d.last, p.Events[len(p.Events)-1].Position)
	return res, nil
}

func (d *dryDialect) SetFrozen(_ context.Context, p *SetFrozenParams) (*SetFrozenResult, error) {
	was := d.frozen
	d.frozen = p.Frozen
	return &SetFrozenResult{WasFrozen: was}, nil
}

func (d *dryDialect) AbortImport(context.Context, *AbortImportParams) error { return nil }

func (d *dryDialect) SwapStaging(context.Context, *SwapStagingParams) error { return nil }

// ReadState reports the state as if the import had written.
func (d *dryDialect) ReadState(ctx context.Context) (*StoreState, error) {
	st, err := d.Dialect.ReadState(ctx)
	if err != nil {
		return nil, err
	}
	if !d.staged {
		st.LastPosition = max(st.LastPosition, d.last)
	}
	st.Frozen = d.frozen
	return st, nil
}

// ImportSecrets checks a batch of secrets against the store's and those of
// earlier batches, as the real one would, and "writes" it.
func (d *dryDialect) ImportSecrets(ctx context.Context, p *ImportSecretsParams) (*ImportSecretsResult, error) {
	if d.secretIDs == nil {
		d.secretIDs, d.secretIdxs = map[string]bool{}, map[int64]bool{}
		for min := int64(0); ; {
			page, err := d.Dialect.ListSecrets(ctx, &ListSecretsParams{MinIdx: min, IncludeDeleted: true, Limit: MaxLimit})
			if err != nil {
				return nil, err
			}
			for _, sec := range page {
				d.secretIDs[sec.ID], d.secretIdxs[sec.Idx] = true, true
				d.maxIdx = max(d.maxIdx, sec.Idx)
			}
			if len(page) < MaxLimit {
				break
			}
			min = page[len(page)-1].Idx + 1
		}
	}
	// As the adapters do: a negative idx takes the next free one.
	res := &ImportSecretsResult{Conflict: -1}
	next := d.maxIdx + 1
	idxs := make([]int64, len(p.Secrets))
	batchIDs, batchIdxs := map[string]bool{}, map[int64]bool{}
	for i, sec := range p.Secrets {
		idx := sec.Idx
		if idx < 0 {
			idx = next
		}
		if d.secretIDs[sec.ID] || d.secretIdxs[idx] || batchIDs[sec.ID] || batchIdxs[idx] {
			res.Conflict = i
			return res, nil
		}
		batchIDs[sec.ID], batchIdxs[idx] = true, true
		idxs[i] = idx
		next = max(next, idx+1)
	}
	for i, sec := range p.Secrets {
		d.secretIDs[sec.ID], d.secretIdxs[idxs[i]] = true, true
		d.maxIdx = max(d.maxIdx, idxs[i])
	}
	return res, nil
}
