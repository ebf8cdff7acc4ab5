package transfer

import (
	"context"
	"fmt"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/driver"
)

// VerifyReport is what Verify found. Problems lists every invariant that
// does not hold (empty: the store is consistent); Notes, what holds but an
// operator should know.
type VerifyReport struct {
	Events       int64    `json:"events"`
	LastPosition int64    `json:"lastPosition"`
	Secrets      int64    `json:"secrets"`
	Tombstones   int64    `json:"tombstones"`
	Checkpoints  int      `json:"checkpoints"`
	Problems     []string `json:"problems"`
	Notes        []string `json:"notes"`
}

// OK reports whether every invariant holds.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// verifyAttempts bounds the re-reads of a store that changes under Verify.
const verifyAttempts = 3

// Verify checks the store's invariants against its rows: positions dense
// from 1 to the last position, the counters of the state row equal to the
// rows they count (events, aggregates, secrets), and the import checkpoints consistent with the store
// (no checkpoint beyond the last position, staging rows only for an
// unfinished replacing import, a freeze held by an unfinished import only
// while the store is frozen). It counts every row: as slow as a full scan.
// The counts and the state row are read apart, so Verify re-reads while
// the store changes under it, and reports a problem if it never holds
// still (freeze the store to verify a busy one).
func Verify(ctx context.Context, s *eventstore.Store) (*VerifyReport, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	var st, after *driver.StoreState
	var rows *driver.RowCounts
	var stats *driver.StoreStats
	var err error
	for attempt := 0; ; attempt++ {
		if st, err = sc.D.ReadState(ctx); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if rows, err = sc.D.CountRows(ctx); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if stats, err = sc.D.ReadStats(ctx, &driver.ReadStatsParams{Counted: true}); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if after, err = sc.D.ReadState(ctx); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if sameState(st, after) || attempt+1 == verifyAttempts {
			break
		}
	}
	rep := &VerifyReport{Events: rows.Events, LastPosition: st.LastPosition, Secrets: rows.Secrets, Tombstones: rows.Tombstones, Problems: []string{}, Notes: []string{}}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	if !sameState(st, after) {
		problem("the store changed while it was counted, %d times in a row: freeze it (esctl freeze) and verify again", verifyAttempts)
		return rep, nil
	}
	if rows.Events != st.EventCount {
		problem("the state row counts %d events, the events table holds %d", st.EventCount, rows.Events)
	}
	switch {
	case rows.Events == 0 && st.LastPosition != 0:
		problem("the store holds no event but its last position is %d", st.LastPosition)
	case rows.Events > 0 && (rows.MinPosition != 1 || rows.MaxPosition != st.LastPosition || rows.Events != st.LastPosition):
		problem("positions are not dense from 1 to the last position %d: %d events from position %d to %d", st.LastPosition, rows.Events, rows.MinPosition, rows.MaxPosition)
	}
	if rows.Aggregates != stats.AggregateCount {
		problem("the state row counts %d aggregates, the events table holds %d", stats.AggregateCount, rows.Aggregates)
	}
	if rows.Secrets != st.SecretCount {
		problem("the state row counts %d secrets, the secrets table holds %d", st.SecretCount, rows.Secrets)
	}
	if rows.Tombstones != st.DeletedSecretCount {
		problem("the state row counts %d deleted secrets, the secrets table holds %d tombstones", st.DeletedSecretCount, rows.Tombstones)
	}
	if rows.Quarantined > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d events in events_quarantine: stored at positions <= 0 by appends that reported a failure (esctl before migration 4); no read sees them", rows.Quarantined))
	}

	cps, err := sc.D.ListCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep.Checkpoints = len(cps)
	var stagedEvents int64
	staging := 0
	for i := range cps {
		cp := &cps[i]
		switch {
		case cp.Kind == estype.CheckpointEvents && cp.Mode == estype.CheckpointAutoStaged && !cp.Done:
			staging++
			stagedEvents += cp.Events
		case cp.Kind == estype.CheckpointEvents && cp.LastPosition > st.LastPosition:
			problem("import %q recorded position %d, beyond the store's last position %d", cp.SourceID, cp.LastPosition, st.LastPosition)
		}
		if !cp.Done && cp.Froze && !st.Frozen {
			problem("unfinished import %q holds a freeze, but the store is not frozen", cp.SourceID)
		}
		if !cp.Done {
			rep.Notes = append(rep.Notes, fmt.Sprintf("import %q is unfinished (%s, %d lines committed): resume or abort it (esctl imports)", cp.SourceID, cp.Mode, cp.Line))
		}
	}
	switch {
	case staging == 0 && rows.StagedImports > 0:
		problem("%d events are staged but no replacing import is unfinished", rows.StagedImports)
	case staging == 1 && rows.StagedImports != stagedEvents:
		problem("the unfinished replacing import recorded %d staged events, the staging table holds %d", stagedEvents, rows.StagedImports)
	}
	return rep, nil
}

// sameState compares two reads of the state row.
func sameState(a, b *driver.StoreState) bool {
	return a.LastPosition == b.LastPosition && a.EventCount == b.EventCount && a.SecretCount == b.SecretCount &&
		a.DeletedSecretCount == b.DeletedSecretCount && a.Frozen == b.Frozen
}
