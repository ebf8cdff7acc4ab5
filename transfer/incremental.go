package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
)

// VersionlessEvent is an event brought in by an incremental import: the
// store assigns its version (continuing its aggregate) and its position.
type VersionlessEvent struct {
	AggregateID string
	Type        string
	Timestamp   int64 // kept as given
	Payload     []byte
	Metadata    []byte // a JSON object, or nil: none
}

// OlderPolicy says what a commit does with pushed events older than the
// store's newest event.
type OlderPolicy int

const (
	// OlderFail fails the commit (nothing is written; the staged events
	// stay for a retry or a rollback). The default: appending events
	// timestamped before the store's newest one would make time-range
	// readers and projections that trust timestamps see history change.
	OlderFail OlderPolicy = iota
	// OlderSkip drops them and appends the rest.
	OlderSkip
)

// CommitOptions are the arguments of CommitIncrementalImport. nil means
// OlderFail.
type CommitOptions struct {
	Older OlderPolicy
}

// IncrementalImportResult reports a commit.
type IncrementalImportResult struct {
	Appended   int64 // events written
	Duplicates int64 // dropped: identical to a stored event or to an earlier pushed one
	Skipped    int64 // dropped as older than the store's newest event (OlderSkip)
	// FirstPosition and LastPosition bound the written events (0 when none).
	FirstPosition, LastPosition int64
}

// IncrementalImportInfo describes an open (staged, not committed) import.
type IncrementalImportInfo = estype.IncrementalImportInfo

// BeginIncrementalImport opens an incremental import and returns its id.
// Several imports may be open at once; their staged events live in the
// database, so an import can be pushed to and committed by another Store or
// process that knows the id. Not blocked by freeze.
func BeginIncrementalImport(ctx context.Context, s *eventstore.Store) (string, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return "", err
	}
	defer sc.Exit()
	id := "ii_" + core.RandomID(22)
	if err := sc.D.BeginIncremental(ctx, &driver.BeginIncrementalParams{ID: id, Now: sc.NowMillis()}); err != nil {
		return "", fmt.Errorf("begin incremental import: %w", err)
	}
	return id, nil
}

// PushIncrementalImport stages events for an open import, validated as
// SaveEvent validates (but without a version). Pushes may come from several
// goroutines or processes; the commit orders events by (timestamp, push
// order). An empty push does nothing. Not blocked by freeze.
func PushIncrementalImport(ctx context.Context, s *eventstore.Store, importID string, events []VersionlessEvent) error {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return err
	}
	defer sc.Exit()
	staged, err := stageable(ctx, s, events)
	if err != nil {
		return err
	}
	found, err := sc.D.PushIncremental(ctx, &driver.PushIncrementalParams{ID: importID, Events: staged, Now: sc.NowMillis()})
	if err != nil {
		return fmt.Errorf("push incremental import: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: %q", estype.ErrImportNotFound, importID)
	}
	return nil
}

// CommitIncrementalImport appends the import's staged events in one
// transaction, all or nothing:
//
//   - a staged event identical to a stored one (same aggregate id, type,
//     timestamp and payload bytes), or to an earlier staged one, is dropped
//     as a duplicate;
//   - events older than the store's newest event fail the commit
//     (OlderFail, the default: *OlderEventsError) or are skipped (OlderSkip);
//   - the rest are appended in (timestamp, push order), each aggregate's
//     versions continuing its last version, positions continuing the store.
//
// The import is then closed. A failed commit (frozen store: ErrFrozen; older
// events; any error) writes nothing and keeps the staged events, so it can
// be retried or rolled back. Readers see none or all of the events.
func CommitIncrementalImport(ctx context.Context, s *eventstore.Store, importID string, opts *CommitOptions) (*IncrementalImportResult, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	var o CommitOptions
	if opts != nil {
		o = *opts
	}
	return commitIncremental(ctx, s, importID, o.Older, nil)
}

// commitIncremental commits an import, or with dry events stages and
// commits them in one transaction and rolls it back.
func commitIncremental(ctx context.Context, s *eventstore.Store, importID string, older OlderPolicy, dry *driver.PushIncrementalParams) (*IncrementalImportResult, error) {
	res, err := core.CommitIncrementalTx(ctx, access.Core(s).W, importID, older == OlderFail, dry)
	if err != nil {
		return nil, fmt.Errorf("commit incremental import %q: %w", importID, err)
	}
	w := res.Work
	switch {
	case res.NotFound:
		return nil, fmt.Errorf("%w: %q", estype.ErrImportNotFound, importID)
	case res.Frozen:
		return nil, estype.ErrFrozen
	case res.Refused:
		return nil, &estype.OlderEventsError{Count: w.Older, AggregateID: w.OldestAggregateID, Timestamp: w.OldestTimestamp, Newest: w.NewestTimestamp}
	}
	out := &IncrementalImportResult{Appended: w.Fresh, Duplicates: w.Duplicates, Skipped: w.Older}
	if w.Fresh > 0 {
		out.FirstPosition, out.LastPosition = res.First, res.First+w.Fresh-1
	}
	return out, nil
}

// RollbackIncrementalImport discards an open import and its staged events;
// other imports are untouched.
func RollbackIncrementalImport(ctx context.Context, s *eventstore.Store, importID string) error {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return err
	}
	defer sc.Exit()
	found, err := sc.D.RollbackIncremental(ctx, importID)
	if err != nil {
		return fmt.Errorf("roll back incremental import: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: %q", estype.ErrImportNotFound, importID)
	}
	return nil
}

// IncrementalImports lists the open imports, oldest first, so that
// abandoned ones can be found and rolled back.
func IncrementalImports(ctx context.Context, s *eventstore.Store) ([]IncrementalImportInfo, error) {
	sc := access.Core(s)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	list, err := sc.D.ListIncremental(ctx)
	if err != nil {
		return nil, fmt.Errorf("list incremental imports: %w", err)
	}
	return list, nil
}

// IncrementalImport is Begin, Push and Commit in one call; on any error the
// import is rolled back (nothing is left staged).
func IncrementalImport(ctx context.Context, s *eventstore.Store, events []VersionlessEvent, opts *CommitOptions) (*IncrementalImportResult, error) {
	id, err := BeginIncrementalImport(ctx, s)
	if err != nil {
		return nil, err
	}
	res, err := func() (*IncrementalImportResult, error) {
		if err := PushIncrementalImport(ctx, s, id, events); err != nil {
			return nil, err
		}
		return CommitIncrementalImport(ctx, s, id, opts)
	}()
	if err != nil {
		if rerr := RollbackIncrementalImport(context.WithoutCancel(ctx), s, id); rerr != nil && !errors.Is(rerr, estype.ErrImportNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}

// stageable validates events as PushIncrementalImport stages them.
func stageable(ctx context.Context, s *eventstore.Store, events []VersionlessEvent) ([]estype.Event, error) {
	sc := access.Core(s)
	withMetadata := false // the store keeps metadata: checked
	staged := make([]estype.Event, len(events))
	for i, v := range events {
		e := estype.Event{AggregateID: v.AggregateID, AggregateVersion: 1, Type: v.Type, Timestamp: v.Timestamp, Payload: v.Payload, Metadata: v.Metadata}
		if err := core.ValidateEvent(i, &e, sc.Limits(), false); err != nil { // application events: no reserved types
			return nil, err
		}
		if e.Metadata != nil && !withMetadata {
			if err := sc.MetadataReady(ctx); err != nil {
				return nil, err
			}
			withMetadata = true
		}
		e.AggregateVersion = 0
		staged[i] = estype.Event(e)
	}
	return staged, nil
}
