package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/estype"
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

// IncrementalImport describes an open (staged, not committed) import.
type IncrementalImport struct {
	ID        string
	Events    int64 // staged events
	CreatedAt int64 // ms since the Unix epoch
	UpdatedAt int64 // last push
}

// BeginIncrementalImport opens an incremental import and returns its id.
// Several imports may be open at once; their staged events live in the
// database, so an import can be pushed to and committed by another Store or
// process that knows the id. Not blocked by freeze.
func (s *Store) BeginIncrementalImport(ctx context.Context) (string, error) {
	if err := s.c.Begin(ctx); err != nil {
		return "", err
	}
	defer s.c.Exit()
	id := "ii_" + randomID(22)
	if err := s.c.D.BeginIncremental(ctx, &driver.BeginIncrementalParams{ID: id, Now: s.c.NowMillis()}); err != nil {
		return "", fmt.Errorf("begin incremental import: %w", err)
	}
	return id, nil
}

// PushIncrementalImport stages events for an open import, validated as
// SaveEvent validates (but without a version). Pushes may come from several
// goroutines or processes; the commit orders events by (timestamp, push
// order). An empty push does nothing. Not blocked by freeze.
func (s *Store) PushIncrementalImport(ctx context.Context, importID string, events []VersionlessEvent) error {
	if err := s.c.Begin(ctx); err != nil {
		return err
	}
	defer s.c.Exit()
	staged, err := s.stageable(events)
	if err != nil {
		return err
	}
	found, err := s.c.D.PushIncremental(ctx, &driver.PushIncrementalParams{ID: importID, Events: staged, Now: s.c.NowMillis()})
	if err != nil {
		return fmt.Errorf("push incremental import: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrImportNotFound, importID)
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
func (s *Store) CommitIncrementalImport(ctx context.Context, importID string, opts *CommitOptions) (*IncrementalImportResult, error) {
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	var o CommitOptions
	if opts != nil {
		o = *opts
	}
	return s.commitIncremental(ctx, importID, o.Older, nil)
}

// commitIncremental commits an import, or with dry events stages and
// commits them in one transaction and rolls it back.
func (s *Store) commitIncremental(ctx context.Context, importID string, older OlderPolicy, dry *driver.PushIncrementalParams) (*IncrementalImportResult, error) {
	res, err := core.CommitIncrementalTx(ctx, s.c.W, importID, older == OlderFail, dry)
	if err != nil {
		return nil, fmt.Errorf("commit incremental import %q: %w", importID, err)
	}
	w := res.Work
	switch {
	case res.NotFound:
		return nil, fmt.Errorf("%w: %q", ErrImportNotFound, importID)
	case res.Frozen:
		return nil, ErrFrozen
	case res.Refused:
		return nil, &OlderEventsError{Count: w.Older, AggregateID: w.OldestAggregateID, Timestamp: w.OldestTimestamp, Newest: w.NewestTimestamp}
	}
	out := &IncrementalImportResult{Appended: w.Fresh, Duplicates: w.Duplicates, Skipped: w.Older}
	if w.Fresh > 0 {
		out.FirstPosition, out.LastPosition = res.First, res.First+w.Fresh-1
	}
	return out, nil
}

// RollbackIncrementalImport discards an open import and its staged events;
// other imports are untouched.
func (s *Store) RollbackIncrementalImport(ctx context.Context, importID string) error {
	if err := s.c.Begin(ctx); err != nil {
		return err
	}
	defer s.c.Exit()
	found, err := s.c.D.RollbackIncremental(ctx, importID)
	if err != nil {
		return fmt.Errorf("roll back incremental import: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrImportNotFound, importID)
	}
	return nil
}

// IncrementalImports lists the open imports, oldest first, so that
// abandoned ones can be found and rolled back.
func (s *Store) IncrementalImports(ctx context.Context) ([]IncrementalImport, error) {
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	list, err := s.c.D.ListIncremental(ctx)
	if err != nil {
		return nil, fmt.Errorf("list incremental imports: %w", err)
	}
	out := make([]IncrementalImport, len(list))
	for i, ii := range list {
		out[i] = IncrementalImport(ii)
	}
	return out, nil
}

// IncrementalImport is Begin, Push and Commit in one call; on any error the
// import is rolled back (nothing is left staged).
func (s *Store) IncrementalImport(ctx context.Context, events []VersionlessEvent, opts *CommitOptions) (*IncrementalImportResult, error) {
	id, err := s.BeginIncrementalImport(ctx)
	if err != nil {
		return nil, err
	}
	res, err := func() (*IncrementalImportResult, error) {
		if err := s.PushIncrementalImport(ctx, id, events); err != nil {
			return nil, err
		}
		return s.CommitIncrementalImport(ctx, id, opts)
	}()
	if err != nil {
		if rerr := s.RollbackIncrementalImport(context.WithoutCancel(ctx), id); rerr != nil && !errors.Is(rerr, ErrImportNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}

// stageable validates events as PushIncrementalImport stages them.
func (s *Store) stageable(events []VersionlessEvent) ([]estype.Event, error) {
	staged := make([]estype.Event, len(events))
	for i, v := range events {
		e := Event{AggregateID: v.AggregateID, AggregateVersion: 1, Type: v.Type, Timestamp: v.Timestamp, Payload: v.Payload}
		payload, err := core.ValidateEvent(i, &e, s.opts.MaxPayloadBytes, false) // application events: no reserved types
		if err != nil {
			return nil, err
		}
		e.Payload, e.AggregateVersion = payload, 0
		staged[i] = estype.Event(e)
	}
	return staged, nil
}
