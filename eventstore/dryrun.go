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
