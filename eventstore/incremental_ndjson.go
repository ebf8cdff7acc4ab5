package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultIncrementalPushEvents is how many events one push of
// IncrementalImportFrom stages at most, by default.
const DefaultIncrementalPushEvents = 5_000

// IncrementalImportOptions are the arguments of IncrementalImportFrom.
type IncrementalImportOptions struct {
	// Older is the policy for events older than the store's newest.
	Older OlderPolicy
	// PushEvents bounds one push (one transaction of staging). 0:
	// DefaultIncrementalPushEvents.
	PushEvents int
	// MaxLineBytes bounds one line. 0: DefaultMaxLineBytes.
	MaxLineBytes int
	// ProgressFunc, when set, is called after each push.
	ProgressFunc func(IncrementalProgress)
	// DryRun reads and checks every line, works out what the commit would
	// do against the store as it is (duplicates, older events, versions
	// and positions) from reads, and writes nothing: nothing is staged.
	DryRun bool
}

// IncrementalProgress reports the lines staged so far.
type IncrementalProgress struct {
	Lines      int64
	ByteOffset int64
}

// IncrementalImportFrom reads NDJSON event lines from r and merges them into
// the store as one incremental import: staged in pushes, then committed in
// one transaction (see CommitIncrementalImport), or not at all. Lines have
// the export format (docs/ndjson-format.md) and are read as strictly as by
// ImportEvents; aggregateVersion may be absent, and aggregateVersion,
// position, threadId and threadCounter are ignored when present: the store
// assigns versions and positions. The first bad line fails the whole import
// with a *LineError (line and byte offset) and writes nothing; so does a
// cancelled ctx. The staged events are discarded on any failure.
func (s *Store) IncrementalImportFrom(ctx context.Context, r io.Reader, opts *IncrementalImportOptions) (*IncrementalImportResult, error) {
	var o IncrementalImportOptions
	if opts != nil {
		o = *opts
	}
	if o.PushEvents <= 0 {
		o.PushEvents = DefaultIncrementalPushEvents
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.DryRun {
		return s.incrementalDryRun(ctx, r, o)
	}
	id, err := s.BeginIncrementalImport(ctx)
	if err != nil {
		return nil, err
	}
	res, err := func() (*IncrementalImportResult, error) {
		lr := newLineReader(r, o.MaxLineBytes, 0, 1, nil)
		batch := make([]VersionlessEvent, 0, o.PushEvents)
		push := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := s.PushIncrementalImport(ctx, id, batch); err != nil {
				return err
			}
			batch = batch[:0]
			if o.ProgressFunc != nil {
				o.ProgressFunc(IncrementalProgress{Lines: lr.line - 1, ByteOffset: lr.offset})
			}
			return nil
		}
		for {
			ev, err := s.nextIncrementalLine(lr)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			batch = append(batch, ev)
			if len(batch) == o.PushEvents {
				if err := push(); err != nil {
					return nil, fmt.Errorf("incremental import, line %d: %w", lr.line-1, err)
				}
			}
		}
		if err := push(); err != nil {
			return nil, err
		}
		return s.CommitIncrementalImport(ctx, id, &CommitOptions{Older: o.Older})
	}()
	if err != nil {
		if rerr := s.RollbackIncrementalImport(context.WithoutCancel(ctx), id); rerr != nil && !errors.Is(rerr, ErrImportNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return res, nil
}

// nextIncrementalLine reads, checks and parses the next line of an
// incremental import's source, and accepts it; io.EOF at the end.
func (s *Store) nextIncrementalLine(lr *lineReader) (VersionlessEvent, error) {
	line, err := lr.next()
	if err != nil {
		return VersionlessEvent{}, err
	}
	if col, reason := checkLineFrame(line, lr.offset == 0); reason != "" {
		return VersionlessEvent{}, lr.errAt(col, "", reason)
	}
	ev, lerr := parseLine(line, s.opts.MaxPayloadBytes, true)
	if lerr != nil {
		return VersionlessEvent{}, lr.errAt(lerr.column, lerr.field, lerr.reason)
	}
	lr.accept(line)
	return VersionlessEvent{AggregateID: ev.AggregateID, Type: ev.Type, Timestamp: ev.Timestamp, Payload: ev.Payload}, nil
}

// incrementalDryRun is IncrementalImportFrom with DryRun: the lines are
// read and checked as a push would, and the commit's outcome is worked out
// from reads of the store: an event identical (aggregate, type, timestamp,
// payload) to an earlier line or to a stored event is a duplicate; one
// older than the store's newest event fails the import (OlderFail) or is
// skipped; the rest get positions after the store's last, in (timestamp,
// line) order, and their aggregate's next versions. These are the rules of
// the adapters' commit (their classification SQL) restated; the
// conformance test DryRunMatchesCommit holds the two together until the
// engine seam's reshape gives both one definition in the core.
func (s *Store) incrementalDryRun(ctx context.Context, r io.Reader, o IncrementalImportOptions) (*IncrementalImportResult, error) {
	type staged struct {
		Event
		seq int
	}
	var events []staged
	lr := newLineReader(r, o.MaxLineBytes, 0, 1, nil)
	for {
		ev, err := s.nextIncrementalLine(lr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		e := Event{AggregateID: ev.AggregateID, AggregateVersion: 1, Type: ev.Type, Timestamp: ev.Timestamp, Payload: ev.Payload}
		if _, err := validateEvent(0, &e, s.opts.MaxPayloadBytes, false); err != nil {
			return nil, fmt.Errorf("incremental import, line %d: %w", lr.line-1, err)
		}
		events = append(events, staged{Event: e, seq: len(events)})
		if o.ProgressFunc != nil && len(events)%o.PushEvents == 0 {
			o.ProgressFunc(IncrementalProgress{Lines: lr.line - 1, ByteOffset: lr.offset})
		}
	}
	d, err := s.Describe(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("incremental import: %w", err)
	}
	if d.IsFrozen {
		return nil, fmt.Errorf("incremental import: %w", ErrFrozen)
	}
	newest := int64(-1)
	if d.LastEventTimestamp != nil {
		newest = *d.LastEventTimestamp
	}
	slices.SortStableFunc(events, func(a, b staged) int { return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), cmp.Compare(a.seq, b.seq)) })
	type content struct {
		id, typ, payload string
		ts               int64
	}
	storedContent := map[content]bool{}
	loaded := map[string]bool{}
	for _, e := range events {
		if loaded[e.AggregateID] {
			continue
		}
		loaded[e.AggregateID] = true
		for se, err := range s.Events(ctx, Filter{AggregateIDs: []string{e.AggregateID}}) {
			if err != nil {
				return nil, fmt.Errorf("incremental import: %w", err)
			}
			storedContent[content{se.AggregateID, se.Type, string(se.Payload), se.Timestamp}] = true
		}
	}
	res := &IncrementalImportResult{}
	seenContent := map[content]bool{}
	var older []staged
	var appended []staged
	for _, e := range events {
		c := content{e.AggregateID, e.Type, string(e.Payload), e.Timestamp}
		switch {
		case seenContent[c] || storedContent[c]:
			res.Duplicates++
		case e.Timestamp < newest:
			older = append(older, e)
		default:
			appended = append(appended, e)
		}
		seenContent[c] = true
	}
	if len(older) > 0 && o.Older == OlderFail {
		return nil, &OlderEventsError{Count: int64(len(older)), AggregateID: older[0].AggregateID, Timestamp: older[0].Timestamp, Newest: newest}
	}
	res.Skipped = int64(len(older))
	res.Appended = int64(len(appended))
	if res.Appended > 0 {
		res.FirstPosition, res.LastPosition = d.LastPosition+1, d.LastPosition+res.Appended
	}
	return res, nil
}
